"""Settings from `F5_WORKER_*` variables: one rule for every list, derived defaults, and one line per mistake."""

from __future__ import annotations

import os
from typing import get_origin

import pytest

from consumer.core.settings import Settings

LIST_FIELDS = [name for name, field in Settings.model_fields.items() if get_origin(field.annotation) is tuple]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.upper().startswith("F5_WORKER_")]:
        monkeypatch.delenv(key)


def test_the_list_settings_are_found():
    expected = {"allowed_output_buckets", "allowed_reference_buckets", "api_key_hashes", "api_cors_origins"}
    assert expected <= set(LIST_FIELDS)


@pytest.mark.parametrize("name", LIST_FIELDS)
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("one", ("one",)),
        ("one, two,", ("one", "two")),
        ('["one", "two"]', ("one", "two")),
        (" [] ", ()),
        ("", ()),
    ],
)
def test_every_list_setting_takes_a_comma_list_or_a_json_array(monkeypatch, name, raw, expected):
    monkeypatch.setenv(f"F5_WORKER_{name.upper()}", raw)
    assert getattr(Settings(), name) == expected
