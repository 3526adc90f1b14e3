"""The RunPod provider with the real `runpod` SDK against a loopback stand-in of RunPod's GraphQL API: what the
SDK sends (deploys from the template, stops for exactly the given pods), the fleet is the prefixed pods only, GPU
types fall back in the template's order, and a bad key or template is one line naming the setting, the key
itself appearing nowhere."""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import runpod  # type: ignore[import-untyped]
from structlog.testing import capture_logs

from consumer.core.errors import ProviderError
from consumer.core.settings import FleetSettings
from consumer.fleet.providers.runpod import KEY_SETTING, URL_ENV, RunPodProvider, redact
from consumer.fleet.providers.runpod_template import TEMPLATE_SETTING, load_template
from tests.paths import REPO
from tests.runpod_standin import KNOWN_GPU_TYPES, RunPodStandIn

KEY = "rpa_T3STKEY0123456789abcdefGHIJ"
WRONG_KEY = "rpa_WR0NGKEY9876543210zyxwvuTSRQ"
SHIPPED = REPO / "deploy" / "runpod" / "pod.json"
TEMPLATE = json.loads(SHIPPED.read_text())
FIRST, SECOND, THIRD = TEMPLATE["gpu_type_ids"]


@pytest.fixture
def standin() -> Iterator[RunPodStandIn]:
    server = RunPodStandIn(KEY)
    yield server
    server.close()


@pytest.fixture
def prefix() -> str:
    return f"unit-{uuid.uuid4().hex[:6]}"


def _template(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / f"pod-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(TEMPLATE | changes))
    return path


def _provider(url: str, prefix: str, template: Path | str = SHIPPED, key: str | None = KEY) -> RunPodProvider:
    settings = FleetSettings(
        fleet_provider="runpod",
        fleet_name_prefix=prefix,
        fleet_runpod_api_key=key,
        fleet_runpod_template=str(template),
        fleet_runpod_api_url=url,
    )
    return RunPodProvider(settings)


def _one_line(exc: ProviderError) -> str:
    text = str(exc)
    assert "\n" not in text and text.strip() == text
    return text


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


# --- starting --------------------------------------------------------------------------------------------------------
def test_two_pods_are_two_deploys_of_the_template_on_its_first_gpu_type(standin: RunPodStandIn, prefix: str) -> None:
    provider = _provider(standin.url, prefix)
    started = provider.start(2)

    assert [p.state for p in started] == ["starting", "starting"]
    deploys = standin.deployed()
    assert len(deploys) == 2
    names = [d["name"] for d in deploys]
    assert len(set(names)) == 2 and all(n.startswith(f"{prefix}-") and len(n) == len(prefix) + 9 for n in names)
    for deploy, name in zip(deploys, names, strict=True):
        assert deploy["imageName"] == TEMPLATE["image_name"]
        assert deploy["gpuTypeId"] == FIRST and deploy["gpuCount"] == 1
        assert deploy["cloudType"] == "SECURE" and deploy["containerDiskInGb"] == 20
        assert deploy["ports"] == "8080/http" and deploy["supportPublicIp"] is False
        env = {item["key"]: item["value"] for item in deploy["env"]}
        assert env == TEMPLATE["env"] | {"F5_WORKER_WORKER_ID": name, "F5_WORKER_FLEET_POD_ID": name}
        assert env["AWS_SECRET_ACCESS_KEY"] == "{{ RUNPOD_SECRET_f5_worker_aws_secret }}"
    assert sorted(p.pod_id for p in started) == sorted(standin.pods)

    # What the SDK sent: GraphQL POSTs to <base>/graphql, the key as a bearer token, never in the URL.
    assert {(r.method, r.path) for r in standin.requests} == {("POST", "/graphql")}
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" and r.query == {} for r in standin.requests)
    assert standin.calls("gpuTypes")[0] == {"input": {"id": FIRST}}  # each template GPU type checked once


def test_started_pods_run_once_their_container_is_up(standin: RunPodStandIn, prefix: str) -> None:
    provider = _provider(standin.url, prefix)
    first, second = provider.start(2)
    standin.boot(first.pod_id)
    states = {p.pod_id: p.state for p in provider.pods()}
    assert states == {first.pod_id: "running", second.pod_id: "starting"}


def test_the_fleet_is_the_prefixed_pods_only(standin: RunPodStandIn, prefix: str) -> None:
    foreign = standin.add_pod("someone-elses-training-run")
    lookalike = standin.add_pod(f"{prefix}x-12345678")  # the prefix, but not followed by "-"
    provider = _provider(standin.url, prefix)
    (ours,) = provider.start(1)

    assert [p.pod_id for p in provider.pods()] == [ours.pod_id]
    assert _provider(standin.url, f"other-{prefix}").pods() == []
    # A successor controller (a new provider) finds the same fleet in RunPod, not in memory.
    assert [p.pod_id for p in _provider(standin.url, prefix).pods()] == [ours.pod_id]

    provider.stop([foreign, lookalike])
    assert standin.stopped() == []
    assert {standin.pods[foreign]["desiredStatus"], standin.pods[lookalike]["desiredStatus"]} == {"RUNNING"}


# --- capacity --------------------------------------------------------------------------------------------------------
def test_a_gpu_type_without_capacity_falls_back_to_the_next_in_the_template(
    standin: RunPodStandIn, prefix: str
) -> None:
    standin.capacity[FIRST] = 0
    provider = _provider(standin.url, prefix)
    with capture_logs() as logs:
        started = provider.start(2)

    assert len(started) == 2
    # The full type is tried once per call: the second pod goes straight to the second type.
    assert [d["gpuTypeId"] for d in standin.deployed()] == [FIRST, SECOND, SECOND]
    assert {p["machine"]["gpuDisplayName"] for p in standin.pods.values()} == {SECOND.removeprefix("NVIDIA ")}
    full = [line for line in logs if line["event"] == "fleet_gpu_type_full"]
    assert [(line["gpu_type"], line["consequence"]) for line in full] == [(FIRST, f"trying {SECOND}")]


def test_fewer_pods_start_when_capacity_runs_out(standin: RunPodStandIn, prefix: str) -> None:
    standin.capacity.update({FIRST: 1, SECOND: 0, THIRD: 1})
    started = _provider(standin.url, prefix).start(4)
    assert len(started) == 2
    assert [d["gpuTypeId"] for d in standin.deployed()] == [FIRST, FIRST, SECOND, THIRD, THIRD]


def test_no_capacity_anywhere_is_a_transient_error_naming_every_gpu_type(standin: RunPodStandIn, prefix: str) -> None:
    standin.capacity.update(dict.fromkeys((FIRST, SECOND, THIRD), 0))
    with pytest.raises(ProviderError) as caught:
        _provider(standin.url, prefix).start(2)

    text = _one_line(caught.value)
    assert caught.value.config is False
    assert f"tried {FIRST}, {SECOND}, {THIRD}" in text
    assert standin.pods == {}


def test_an_api_error_after_some_pods_started_returns_those_and_none_started_is_transient(
    standin: RunPodStandIn, prefix: str
) -> None:
    trouble = "Something went wrong. Please try again later or contact support."
    standin.failures["podFindAndDeployOnDemand"] = [None, trouble]
    provider = _provider(standin.url, prefix)
    with capture_logs() as logs:
        started = provider.start(3)
    assert [p.pod_id for p in started] == list(standin.pods)
    assert len(standin.deployed()) == 2  # no fallback to another GPU type: only capacity errors fall back
    assert [line["started"] for line in logs if line["event"] == "fleet_start_incomplete"] == [1]

    standin.failures["podFindAndDeployOnDemand"] = [trouble]
    with pytest.raises(ProviderError) as caught:
        provider.start(1)
    assert caught.value.config is False and trouble in _one_line(caught.value)


# --- stopping --------------------------------------------------------------------------------------------------------
def test_stop_stops_exactly_the_given_pods_then_they_are_terminated(standin: RunPodStandIn, prefix: str) -> None:
    provider = _provider(standin.url, prefix)
    a, b, c = (p.pod_id for p in provider.start(3))
    for pod_id in (a, b, c):
        standin.boot(pod_id)

    provider.stop([a, c])
    assert standin.stopped() == [a, c]
    assert standin.terminated() == []  # stopping is the worker's SIGTERM; the pod is not deleted under it
    assert {p.pod_id: p.state for p in provider.pods()} == {a: "stopping", b: "running", c: "stopping"}

    provider.stop([a])  # already stopping: not sent again
    assert standin.stopped() == [a, c]

    # Once stopped (no container left), the next change terminates them: nothing is billed for them after.
    assert set(standin.terminated()) == {a, c}
    assert [p.pod_id for p in provider.pods()] == [b]


def test_close_leaves_the_pods_to_a_successor_unless_asked_to_stop_them(standin: RunPodStandIn, prefix: str) -> None:
    provider = _provider(standin.url, prefix)
    pods = [p.pod_id for p in provider.start(2)]
    provider.close(stop_workers=False)
    assert standin.stopped() == []
    provider.close(stop_workers=True)
    assert sorted(standin.stopped()) == sorted(pods)


# --- the key ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rejects_with", [401, 403, "graphql"])
def test_a_refused_key_is_a_configuration_error_that_never_shows_the_key(
    prefix: str, rejects_with: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    server = RunPodStandIn(KEY, rejects_with=rejects_with)
    provider = _provider(server.url, prefix, key=WRONG_KEY)
    errors: list[ProviderError] = []
    try:
        with capture_logs() as logs, caplog.at_level(logging.DEBUG):
            for attempt in (provider.pods, lambda: provider.start(1), lambda: provider.stop(["abc"])):
                with pytest.raises(ProviderError) as caught:
                    attempt()
                errors.append(caught.value)
    finally:
        server.close()

    assert server.pods == {} and server.deployed() == []
    assert server.requests and all(r.headers["Authorization"] == f"Bearer {WRONG_KEY}" for r in server.requests)
    for error in errors:
        text = _one_line(error)
        assert error.config is True and KEY_SETTING in text and "refused the API key" in text
        assert all(WRONG_KEY not in f"{e} {e!r} {e.args}" for e in _chain(error))
    out = capsys.readouterr()
    seen = json.dumps(logs, default=str) + caplog.text + out.out + out.err + repr(provider)
    assert WRONG_KEY not in seen and WRONG_KEY[4:12] not in seen


def test_no_key_is_a_configuration_error(standin: RunPodStandIn, prefix: str) -> None:
    with pytest.raises(ProviderError) as caught:
        _provider(standin.url, prefix, key=None).pods()
    assert caught.value.config is True and KEY_SETTING in _one_line(caught.value)
    assert standin.requests == []


def test_a_key_in_the_url_is_redacted_from_an_unreachable_api(prefix: str) -> None:
    """SDKs before 1.10 sent the key as `?api_key=` and requests' errors quote the URL: the message hides it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    provider = _provider(f"http://127.0.0.1:{closed_port}/v1?api_key={KEY}#", prefix)
    with capture_logs() as logs, pytest.raises(ProviderError) as caught:
        provider.pods()

    text = _one_line(caught.value)
    assert caught.value.config is False and "ConnectionError" in text and "api_key=***" in text
    assert KEY not in text and all(KEY not in repr(e) for e in _chain(caught.value))
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert KEY not in json.dumps(logs, default=str)


def test_redact_hides_query_keys_bearer_tokens_and_the_key_itself() -> None:
    text = f"GET /graphql?api_key={KEY}&x=1 Authorization: Bearer {KEY} ({KEY})"
    assert redact(text, KEY) == "GET /graphql?api_key=***&x=1 Authorization: Bearer *** (***)"
    assert redact(text) == f"GET /graphql?api_key=***&x=1 Authorization: Bearer *** ({KEY})"  # a key it is not told


def test_the_sdk_globals_are_put_back_after_each_call(
    standin: RunPodStandIn, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runpod, "api_key", "another-users-key")
    monkeypatch.setenv(URL_ENV, "http://elsewhere.invalid")
    _provider(standin.url, prefix).start(1)
    assert len(standin.pods) == 1  # the call went to the provider's endpoint, with its key
    assert runpod.api_key == "another-users-key" and os.environ[URL_ENV] == "http://elsewhere.invalid"
    monkeypatch.delenv(URL_ENV)
    _provider(standin.url, prefix).pods()
    assert URL_ENV not in os.environ


# --- the template ----------------------------------------------------------------------------------------------------
def test_the_shipped_template_is_valid_and_its_gpu_types_exist_in_the_standin() -> None:
    template = load_template(SHIPPED)
    assert template.container_disk_in_gb == 20 and template.gpu_count == 1 and template.ports == "8080/http"
    assert len(template.gpu_type_ids) == 3 and "F5_WORKER_SHUTDOWN_GRACE_S" in template.env
    assert set(template.gpu_type_ids) <= set(KNOWN_GPU_TYPES)


def test_an_unknown_gpu_type_is_a_configuration_error_before_any_pod(
    standin: RunPodStandIn, prefix: str, tmp_path: Path
) -> None:
    template = _template(tmp_path, gpu_type_ids=[FIRST, "NVIDIA GeForce RTX 9999"])
    provider = _provider(standin.url, prefix, template)
    for attempt in (provider.pods, lambda: provider.start(1)):
        with pytest.raises(ProviderError) as caught:
            attempt()
        text = _one_line(caught.value)
        assert caught.value.config is True and "'NVIDIA GeForce RTX 9999'" in text and TEMPLATE_SETTING in text
    assert standin.deployed() == []


@pytest.mark.parametrize(
    ("content", "named"),
    [
        (None, "cannot read"),
        ("{not json", "is not JSON (line 1"),
        (TEMPLATE | {"gpu_types": [FIRST]}, "gpu_types: Extra inputs are not permitted"),
        (TEMPLATE | {"gpu_type_ids": []}, "gpu_type_ids: List should have at least 1 item"),
        (TEMPLATE | {"gpu_type_ids": [FIRST, FIRST]}, "a GPU type is listed twice"),
        (TEMPLATE | {"cloud_type": "CHEAP"}, "cloud_type: Input should be"),
        (
            TEMPLATE | {"env": {"AWS_SECRET_ACCESS_KEY": "abc123"}},
            "AWS_SECRET_ACCESS_KEY must reference a RunPod secret",
        ),
        (TEMPLATE | {"env": {"X": 'say "hi"'}}, "X: a quote, backslash or line break"),
        (TEMPLATE | {"env": {"F5_WORKER_WORKER_ID": "w"}}, "F5_WORKER_WORKER_ID is set by the provider"),
        (TEMPLATE | {"image_name": 'img"} injected'}, "image_name: String should match pattern"),
    ],
)
def test_a_template_that_cannot_work_is_one_line_naming_the_file_and_the_setting(
    standin: RunPodStandIn, prefix: str, tmp_path: Path, content: Any, named: str
) -> None:
    path = tmp_path / "pod.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ProviderError) as caught:
        _provider(standin.url, prefix, path).start(1)
    text = _one_line(caught.value)
    assert caught.value.config is True and named in text and str(path) in text and TEMPLATE_SETTING in text
    assert "abc123" not in text  # a secret's value is not echoed
    assert standin.deployed() == []
