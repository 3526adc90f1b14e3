"""Settings from `F5_WORKER_*` variables: one rule for every list, derived defaults, and one line per mistake."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal, get_args, get_origin

import pytest
from annotated_types import Ge, Gt, Le
from pydantic import SecretStr

from consumer.core.errors import ConfigurationError
from consumer.core.settings import Settings, load_settings
from consumer.core.settings_errors import show_setting

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


# --- one line per mistake --------------------------------------------------------------------------------------
# Settings that take any text: no value is invalid here (what they name is checked where it is used).
ANY_TEXT = {
    "aws_region",
    "aws_endpoint_url",
    "queue_url",
    "bucket",
    "output_prefix",
    "jobs_prefix",
    "jobs_table",
    "jobs_index_prefix",
    "workers_prefix",
    "voices_prefix",
    "topic_arn",
    "events_queue_url",
    "cloudwatch_namespace",
    "health_host",
    "health_token",
    "scratch_dir",
    "model_dir",
    "checkpoint",
    "vocoder",
    "device",
    "vocab",
    "architecture",
    "asr_model",
    "asr_language",
    "cache_dir",
    "webhook_secret",
    "api_host",
    "api_events_queue_url",
    "api_jobs_prefix",
    "worker_id",
    "log_level",
}
# Values of other settings that must never show in a message (two are secrets).
SENTINELS = {
    "F5_WORKER_WEBHOOK_SECRET": "whsec_SENTINEL_webhook_secret",
    "F5_WORKER_API_KEY_HASHES": "team-a:SENTINEL" + "ab" * 28,
    "F5_WORKER_QUEUE_URL": "https://sqs.example/SENTINEL-queue",
}
SECRET = {"webhook_secret", "api_key_hashes"}


def _kinds(annotation: object) -> set[object]:
    """The types a setting's annotation admits, flattened (Literal and Annotated parts by their kind)."""
    if get_origin(annotation) is Literal:
        return {Literal}
    if get_origin(annotation) is Annotated:
        return _kinds(get_args(annotation)[0])
    if get_origin(annotation) is tuple:
        return {tuple}
    if get_args(annotation):  # a union
        return set().union(*(_kinds(arg) for arg in get_args(annotation)))
    return {annotation} - {type(None)}


def _bad_values(name: str) -> list[str]:
    field = Settings.model_fields[name]
    kinds = _kinds(field.annotation)
    values = ["abc"] if kinds & {int, float, bool} else []
    for rule in field.metadata:
        values += [str(rule.ge - 1)] if isinstance(rule, Ge) else []
        values += [str(rule.gt)] if isinstance(rule, Gt) else []
        values += [str(rule.le + 1)] if isinstance(rule, Le) else []
        values += ["no-such-choice"] if getattr(rule, "pattern", None) else []
    return values + (['["SENTINEL-in-a-list", 7]', '["unclosed"'] if tuple in kinds else [])


BAD = [(name, value) for name in Settings.model_fields for value in _bad_values(name)] + [
    ("max_in_flight", "0"),
    ("max_in_flight", "-1"),
    ("max_in_flight", "65"),
]


def _message(err: ConfigurationError) -> str:
    """What the CLI prints for it (consumer/cli.py `main`)."""
    return f"f5-worker: {err}\n  fix: {err.fix}"


def _load_error(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], **overrides: object) -> str:
    for key, value in (SENTINELS | env).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as err:
        load_settings(**overrides)
    return _message(err.value)


def _assert_one_mistake(text: str) -> None:
    assert len(text.splitlines()) == 2, text
    assert not re.search("pydantic|validation error|input_value", text, re.IGNORECASE), text
    assert "SENTINEL" not in text, text


def test_every_setting_is_either_checked_or_takes_any_text():
    checked = {name for name, _ in BAD}
    assert checked | ANY_TEXT == set(Settings.model_fields)
    assert not checked & ANY_TEXT
    assert all(_kinds(Settings.model_fields[name].annotation) <= {str, Path, SecretStr} for name in ANY_TEXT)


@pytest.mark.parametrize(("name", "value"), BAD)
def test_a_bad_value_is_one_line_naming_the_variable_and_no_other_value(monkeypatch, name, value):
    variable = f"F5_WORKER_{name.upper()}"
    text = _load_error(monkeypatch, {variable: value})
    assert variable in text.splitlines()[0] and variable in text.splitlines()[1]
    assert name in SECRET or value in text
    _assert_one_mistake(text if name in SECRET else text.replace(value, "<the value given>"))


@pytest.mark.parametrize(
    ("env", "accepts"),
    [
        ({"F5_WORKER_VISIBILITY_TIMEOUT_S": "abc"}, "a whole number from 2 to 43200"),
        ({"F5_WORKER_HEARTBEAT_INTERVAL_S": "0"}, "a number above 0"),
        ({"F5_WORKER_VOICE_REVALIDATE_S": "-1"}, "a number of 0 or more"),
        ({"F5_WORKER_MAX_IN_FLIGHT": "-1"}, "auto or a whole number from 1 to 64"),
        ({"F5_WORKER_ENGINE": "gpu"}, "f5 or fake"),
        ({"F5_WORKER_DTYPE": "fp8"}, "float32, float16 or bfloat16"),
        ({"F5_WORKER_BURST": "maybe"}, "true or false"),
        ({"F5_WORKER_ALLOWED_OUTPUT_BUCKETS": "[1]"}, 'comma-separated list (or a JSON array of strings: ["a", "b"])'),
        ({"F5_WORKER_HEALTH_PORT": "http"}, "a whole number from 0 to 65535, or unset"),
    ],
)
def test_the_message_says_what_the_setting_accepts(monkeypatch, env, accepts):
    text = _load_error(monkeypatch, env)
    _assert_one_mistake(text)
    assert accepts in text.splitlines()[0] and accepts in text.splitlines()[1]


def test_a_flag_given_as_an_override_is_named_by_its_variable_too(monkeypatch):
    text = _load_error(monkeypatch, {}, max_in_flight="lots")
    _assert_one_mistake(text)
    assert "F5_WORKER_MAX_IN_FLIGHT='lots'" in text


def test_several_bad_settings_name_the_first_and_list_the_others(monkeypatch):
    env = {"F5_WORKER_VISIBILITY_TIMEOUT_S": "abc", "F5_WORKER_WAIT_TIME_S": "99", "F5_WORKER_BURST": "maybe"}
    text = _load_error(monkeypatch, env)
    _assert_one_mistake(text)
    first = text.splitlines()[0]
    assert "F5_WORKER_WAIT_TIME_S='99'" in first
    assert "also invalid: F5_WORKER_VISIBILITY_TIMEOUT_S, F5_WORKER_BURST" in first


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (
            {"F5_WORKER_HEARTBEAT_INTERVAL_S": "20", "F5_WORKER_VISIBILITY_TIMEOUT_S": "15"},
            ["F5_WORKER_HEARTBEAT_INTERVAL_S=20.0", "F5_WORKER_VISIBILITY_TIMEOUT_S=15"],
        ),
        (
            {"F5_WORKER_RETRY_BASE_DELAY_S": "100", "F5_WORKER_RETRY_MAX_DELAY_S": "50"},
            ["F5_WORKER_RETRY_BASE_DELAY_S=100", "F5_WORKER_RETRY_MAX_DELAY_S=50"],
        ),
        (
            {"F5_WORKER_MODEL_DIR": "/m", "F5_WORKER_CHECKPOINT": "/c.safetensors"},
            ["F5_WORKER_MODEL_DIR=/m", "F5_WORKER_CHECKPOINT=/c.safetensors"],
        ),
        ({"F5_WORKER_MODEL_DIR": "/m", "F5_WORKER_VOCAB": "/v.txt"}, ["F5_WORKER_MODEL_DIR=/m", "F5_WORKER_VOCAB"]),
        (
            {"F5_WORKER_MAX_IN_FLIGHT": "2", "F5_WORKER_BATCH_MAX_SIZE": "4"},
            ["F5_WORKER_BATCH_MAX_SIZE=4", "F5_WORKER_MAX_IN_FLIGHT=2"],
        ),
    ],
)
def test_a_cross_field_rule_names_both_variables_and_no_other_value(monkeypatch, env, named):
    text = _load_error(monkeypatch, env)
    _assert_one_mistake(text)
    assert all(part in text.splitlines()[0] for part in named), text


@pytest.mark.parametrize("name", sorted(SECRET))
def test_a_secret_setting_is_named_but_its_value_never_shown(name):
    shown = show_setting(name, "whsec_SENTINEL")
    assert f"F5_WORKER_{name.upper()}" in shown and "SENTINEL" not in shown
    assert show_setting("bucket", "b1") == "F5_WORKER_BUCKET=b1"


# --- defaults derived from other settings ------------------------------------------------------------------------
def test_the_heartbeat_default_follows_the_visibility_timeout(monkeypatch):
    assert Settings().heartbeat_interval_s == 30  # unchanged at the default visibility (120 s)
    monkeypatch.setenv("F5_WORKER_VISIBILITY_TIMEOUT_S", "15")
    assert 0 < Settings().heartbeat_interval_s < 15
    assert Settings(visibility_timeout_s=2).heartbeat_interval_s < 2
    assert Settings(visibility_timeout_s=600).heartbeat_interval_s == 30
    assert Settings(heartbeat_interval_s=10).heartbeat_interval_s == 10  # given: kept


def test_the_first_retry_delay_default_follows_the_ceiling(monkeypatch):
    assert Settings().retry_base_delay_s == 5
    monkeypatch.setenv("F5_WORKER_RETRY_MAX_DELAY_S", "2")
    assert Settings().retry_base_delay_s == 2
