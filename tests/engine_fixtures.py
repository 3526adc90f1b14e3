"""Fixtures for the engine tests, imported by them with `from tests.engine_fixtures import *`.

The tiny random model is written once per test session into the session's base temp directory
(`ensure_random_model` reuses it), however many modules ask for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from consumer.audio.reference import decode_reference
from consumer.engine import Reference
from consumer.engine.model_spec import wheel_example_path

REF_EN_FILE = "infer/examples/basic/basic_ref_en.wav"
REF_EN_TEXT = "Some call me nature, others call me mother nature."
REF_ZH_FILE = "infer/examples/basic/basic_ref_zh.wav"
REF_ZH_TEXT = "对，这就是我，万人敬仰的太乙真人。"

__all__ = ["REF_EN_TEXT", "en_reference", "ref_en_bytes", "tiny_engine", "tiny_model_path", "zh_reference"]


@pytest.fixture(scope="session")
def ref_en_bytes() -> bytes:
    return wheel_example_path(REF_EN_FILE).read_bytes()


@pytest.fixture(scope="session")
def en_reference(ref_en_bytes: bytes) -> Reference:
    return decode_reference(ref_en_bytes, REF_EN_TEXT, cache_key="wheel/basic_ref_en")


@pytest.fixture(scope="session")
def zh_reference() -> Reference:
    return decode_reference(wheel_example_path(REF_ZH_FILE).read_bytes(), REF_ZH_TEXT, cache_key="wheel/zh")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from consumer.engine.random_model import ensure_random_model

    return ensure_random_model(tmp_path_factory.getbasetemp() / "engine-models", "tiny")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_path: Path) -> Iterator[Any]:
    from consumer.engine.f5 import F5Engine
    from consumer.engine.model_spec import load_model_dir

    engine = F5Engine(load_model_dir(tiny_model_path), device="cpu")
    engine.load()
    yield engine
    engine.close()
