"""What every producer command shares: settings from F5_WORKER_*, required settings, the client, and output as
text or JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import typer

from consumer.core.errors import ConfigurationError
from consumer.producer import cli_common
from consumer.producer.client import Client


def test_emit_prints_the_text_or_the_data_as_json(capsys):
    cli_common.emit({"a": 1}, as_json=False, text="one line")
    assert capsys.readouterr().out == "one line\n"
    cli_common.emit({"a": 1, "at": datetime(2026, 1, 2, tzinfo=UTC)}, as_json=True, text="ignored")
    assert json.loads(capsys.readouterr().out) == {"a": 1, "at": "2026-01-02 00:00:00+00:00"}


def test_emit_without_text_prints_the_data_as_json(capsys):
    cli_common.emit([1, 2], as_json=False)
    assert json.loads(capsys.readouterr().out) == [1, 2]


def test_emit_prints_an_empty_text_as_is(capsys):
    cli_common.emit({"a": 1}, as_json=False, text="")
    assert capsys.readouterr().out == "\n"


def test_require_passes_a_value_through():
    assert cli_common.require("https://q", "queue_url") == "https://q"


@pytest.mark.parametrize("value", [None, ""])
def test_require_exits_2_naming_the_variable(value, capsys):
    with pytest.raises(typer.Exit) as exited:
        cli_common.require(value, "queue_url")
    assert exited.value.exit_code == 2
    assert "set F5_WORKER_QUEUE_URL" in capsys.readouterr().err


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("F5_WORKER_BUCKET", "my-audio-bucket")
    assert cli_common.settings().bucket == "my-audio-bucket"


def test_a_bad_setting_is_a_configuration_error_naming_it(monkeypatch):
    monkeypatch.setenv("F5_WORKER_VISIBILITY_TIMEOUT_S", "not-a-number")
    with pytest.raises(ConfigurationError, match="F5_WORKER_VISIBILITY_TIMEOUT_S"):
        cli_common.settings()


def test_the_client_needs_a_queue_and_a_bucket(monkeypatch, capsys):
    monkeypatch.delenv("F5_WORKER_QUEUE_URL", raising=False)
    monkeypatch.setenv("F5_WORKER_BUCKET", "b")
    with pytest.raises(typer.Exit) as exited:
        cli_common.client()
    assert exited.value.exit_code == 2 and "F5_WORKER_QUEUE_URL" in capsys.readouterr().err


def test_the_client_uses_the_configured_stack(cli_env):
    client, settings = cli_common.client()
    assert isinstance(client, Client)
    assert (settings.queue_url, settings.bucket) == (cli_env.resources.queue_url, cli_env.resources.bucket)
    assert settings.events_queue_url == cli_env.resources.events_queue_url
    assert client.record("never-sent") is None  # it reaches the stack's bucket
