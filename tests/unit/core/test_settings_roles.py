"""One settings class per role: each loads alone from `F5_WORKER_*`, holds only its fields and checks its own
rules; `Settings` is their union, every field defined in exactly one class."""

from __future__ import annotations

import os

import pytest

from consumer.core.errors import ConfigurationError
from consumer.core.settings import (
    ALL_FIELDS,
    ROLES,
    ApiSettings,
    AwsSettings,
    EngineSettings,
    FleetSettings,
    LogSettings,
    ProducerSettings,
    Settings,
    SettingsBase,
    VoiceCacheSettings,
    WebhookTargetSettings,
    WorkerSettings,
    load_role,
    load_settings,
)
from consumer.core.settings_doc import SECTIONS, own_fields, render_settings_doc

SHARED = (AwsSettings, LogSettings, VoiceCacheSettings, WebhookTargetSettings)
AWS_FIELDS = set(AwsSettings.model_fields)
ENGINE_FIELDS = set(EngineSettings.model_fields)
API_ONLY = set(own_fields(ApiSettings))
WORKER_ONLY = set(own_fields(WorkerSettings))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.upper().startswith("F5_WORKER_")]:
        monkeypatch.delenv(key)


def _defined_in(cls: type[SettingsBase]) -> set[str]:
    return set(own_fields(cls))


# --- each role holds its fields and no other role's ---------------------------------------------------------------
def test_the_engine_has_no_aws_field_and_the_api_no_engine_or_worker_field():
    assert "bucket" in AWS_FIELDS and "queue_url" in AWS_FIELDS
    assert not ENGINE_FIELDS & AWS_FIELDS
    assert not set(ApiSettings.model_fields) & (ENGINE_FIELDS | WORKER_ONLY)
    assert not set(ProducerSettings.model_fields) & (ENGINE_FIELDS | WORKER_ONLY | API_ONLY)
    assert not set(WorkerSettings.model_fields) & (ENGINE_FIELDS | API_ONLY)


@pytest.mark.parametrize(
    ("role", "fields"),
    [
        (EngineSettings, {"engine", "model_dir", "checkpoint", "device", "batch_max_size", "asr_model", "cache_dir"}),
        (WorkerSettings, {"visibility_timeout_s", "max_in_flight", "webhook_secret", "worker_id", "topic_arn"}),
        (ApiSettings, {"api_host", "api_key_hashes", "api_jobs_prefix", "voice_revalidate_s", "bucket"}),
        (ProducerSettings, {"events_queue_url", "webhook_allow_private", "jobs_prefix", "queue_url", "log_json"}),
    ],
)
def test_a_role_has_the_fields_its_code_reads(role, fields):
    assert fields <= set(role.model_fields)


@pytest.mark.parametrize("role", [WorkerSettings, ApiSettings, ProducerSettings])
def test_every_aws_facing_role_has_the_aws_and_log_fields(role):
    assert set(AwsSettings.model_fields) | set(LogSettings.model_fields) <= set(role.model_fields)


# --- Settings is the union, each field defined once -------------------------------------------------------------------
def test_settings_is_the_union_of_the_roles():
    union = set().union(*(role.model_fields for role in ROLES))
    assert set(Settings.model_fields) == union
    assert all(issubclass(Settings, role) for role in ROLES)


def test_every_field_is_defined_in_exactly_one_class():
    classes = [WorkerSettings, EngineSettings, ApiSettings, ProducerSettings, *SHARED]
    defined = [name for cls in classes for name in _defined_in(cls)]
    assert len(defined) == len(set(defined))
    assert set(defined) == set(Settings.model_fields)
    assert not _defined_in(Settings)  # the composite adds a rule, no field


def test_a_field_is_the_same_in_a_role_and_in_settings():
    for role in ROLES:
        for name, field in role.model_fields.items():
            composite = Settings.model_fields[name]
            assert (field.annotation, field.default, field.description) == (
                composite.annotation,
                composite.default,
                composite.description,
            ), name


def test_the_reference_has_one_table_per_class_covering_every_field_once():
    doc = render_settings_doc()
    assert [cls for cls, _, _ in SECTIONS] == list(dict.fromkeys(cls for cls, _, _ in SECTIONS))
    assert {cls for cls, _, _ in SECTIONS} == {*ROLES, *SHARED, FleetSettings}  # `scale` is not in `Settings`
    for name in ALL_FIELDS:
        assert doc.count(f"| `F5_WORKER_{name.upper()}` |") == 1, name
    for cls, title, _ in SECTIONS:
        assert f"## {title} (`{cls.__name__}`)" in doc


def test_the_reference_lists_the_fields_in_the_order_errors_name_them():
    """When several variables are bad, the first named is the first of them in docs/settings.md."""
    documented = [name for cls, _, _ in SECTIONS for name in own_fields(cls)]
    assert documented == list(ALL_FIELDS)  # `Settings`' fields, then those only `scale` reads


# --- each role loads alone --------------------------------------------------------------------------------------------
def test_each_role_reads_its_variables_from_the_environment(monkeypatch):
    monkeypatch.setenv("F5_WORKER_BUCKET", "b1")
    monkeypatch.setenv("F5_WORKER_API_PORT", "9001")
    monkeypatch.setenv("F5_WORKER_MODEL_DIR", "/models/m")
    monkeypatch.setenv("F5_WORKER_VISIBILITY_TIMEOUT_S", "300")
    monkeypatch.setenv("F5_WORKER_EVENTS_QUEUE_URL", "https://sqs.example/events")
    monkeypatch.setenv("F5_WORKER_API_CORS_ORIGINS", "https://a.example, https://b.example")
    api = ApiSettings()
    assert (api.bucket, api.api_port) == ("b1", 9001)
    assert api.api_cors_origins == ("https://a.example", "https://b.example")  # the list rule holds in a role
    assert str(EngineSettings().model_dir) == "/models/m"
    assert WorkerSettings().visibility_timeout_s == 300
    assert ProducerSettings().events_queue_url == "https://sqs.example/events"
    assert AwsSettings().bucket == "b1"


def test_a_role_ignores_a_bad_variable_of_another_role(monkeypatch):
    monkeypatch.setenv("F5_WORKER_ENGINE", "gpu")  # the engine's: invalid
    monkeypatch.setenv("F5_WORKER_API_PORT", "http")  # the API's: invalid
    assert ProducerSettings().bucket == ""
    assert WorkerSettings().queue_url == ""
    with pytest.raises(ConfigurationError, match="F5_WORKER_ENGINE"):
        load_role(EngineSettings)
    with pytest.raises(ConfigurationError, match="F5_WORKER_API_PORT"):
        load_role(ApiSettings)
    with pytest.raises(ConfigurationError, match="F5_WORKER_API_PORT"):  # the first in field order
        load_settings()


def test_each_role_checks_its_own_rules(monkeypatch):
    monkeypatch.setenv("F5_WORKER_VISIBILITY_TIMEOUT_S", "15")
    assert WorkerSettings().heartbeat_interval_s < 15  # the derived default
    monkeypatch.setenv("F5_WORKER_HEARTBEAT_INTERVAL_S", "20")
    with pytest.raises(ConfigurationError, match=r"HEARTBEAT_INTERVAL_S=20\.0 and .*VISIBILITY_TIMEOUT_S=15"):
        load_role(WorkerSettings)
    monkeypatch.setenv("F5_WORKER_MODEL_DIR", "/m")
    monkeypatch.setenv("F5_WORKER_CHECKPOINT", "/c.safetensors")
    with pytest.raises(ConfigurationError, match="give one model, not two"):
        load_role(EngineSettings)
    assert load_role(ApiSettings).api_port == 8000  # neither rule is the API's


def test_the_rule_across_worker_and_engine_is_checked_by_settings_only(monkeypatch):
    monkeypatch.setenv("F5_WORKER_MAX_IN_FLIGHT", "2")
    monkeypatch.setenv("F5_WORKER_BATCH_MAX_SIZE", "4")
    assert WorkerSettings().max_in_flight == 2
    assert EngineSettings().batch_max_size == 4
    with pytest.raises(ConfigurationError, match="a batch needs at least as many messages in flight"):
        load_settings()


def test_load_role_takes_overrides_first(monkeypatch):
    monkeypatch.setenv("F5_WORKER_API_PORT", "9001")
    assert load_role(ApiSettings, api_port=9002).api_port == 9002
    with pytest.raises(ConfigurationError, match="F5_WORKER_MAX_IN_FLIGHT='lots'"):
        load_role(WorkerSettings, max_in_flight="lots")
