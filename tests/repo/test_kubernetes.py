"""deploy/kubernetes/, checked offline: the core objects against Kubernetes' own schemas (kubernetes-validate,
strict), the KEDA objects against KEDA's models (cloudcoil), and the invariants that tie them to the worker and
to the fleet policy (consumer/fleet/policy.py): the grace period, the scaling numbers, the probes, non-root."""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import kubernetes_validate
import pydantic
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication

from consumer.core.metrics import Metrics
from consumer.core.settings import ALL_FIELDS, ENV_PREFIX, FleetSettings, WorkerSettings
from consumer.fleet.policy import needed_pods
from consumer.worker.health import HealthServer
from tests.paths import REPO

K8S = REPO / "deploy" / "kubernetes"
# The oldest Kubernetes that KEDA 2.16 supports, and the newest schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.29", kubernetes_validate.latest_version())
CORE_KINDS = {"Deployment", "ConfigMap", "Secret"}
KEDA_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "ScaledObject": ScaledObject,
    "TriggerAuthentication": TriggerAuthentication,
}
# Trigger metadata is a free string map in KEDA's CRD (and in cloudcoil's model), so its keys are checked here:
# the aws-sqs-queue scaler's own (awsSqsQueueMetadata in KEDA's pkg/scalers/aws_sqs_queue_scaler.go; the
# deprecated identityOwner left out).
SQS_TRIGGER_KEYS = {
    "queueURL",
    "queueURLFromEnv",
    "queueLength",
    "activationQueueLength",
    "awsRegion",
    "awsEndpoint",
    "scaleOnInFlight",
    "scaleOnDelayed",
}
SHUTDOWN_MARGIN_S = 10  # past grace + long poll: the hand-back call and the exit (~2 s, docs/deploying.md)


@cache
def _documents() -> tuple[dict[str, Any], ...]:
    texts = [path.read_text(encoding="utf-8") for path in sorted(K8S.glob("*.yaml"))]
    return tuple(doc for text in texts for doc in yaml.safe_load_all(text) if doc is not None)


def _one(kind: str) -> dict[str, Any]:
    """A deep copy of the only object of `kind`, so that a test may change it."""
    found = [doc for doc in _documents() if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind} in {K8S}"
    return copy.deepcopy(found[0])


def _key_paths(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        return {p for k, v in value.items() for p in {f"{prefix}.{k}"} | _key_paths(v, f"{prefix}.{k}")}
    if isinstance(value, list):
        return {p for i, v in enumerate(value) for p in _key_paths(v, f"{prefix}[{i}]")}
    return set()


def _validate_keda(obj: dict[str, Any]) -> None:
    """KEDA's model, strict types; pydantic ignores unknown keys, so the dump must give back every key written."""
    model = KEDA_MODELS[obj["kind"]].model_validate(obj, strict=True)
    dumped = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    dropped = sorted(_key_paths(obj) - _key_paths(dumped))
    assert not dropped, f"{obj['kind']}: not fields of KEDA's model: {dropped}"
    assert dumped == obj, f"{obj['kind']}: a value changed in KEDA's model"
    for trigger in obj["spec"].get("triggers", []):
        assert trigger["type"] == "aws-sqs-queue"
        unknown = sorted(set(trigger["metadata"]) - SQS_TRIGGER_KEYS)
        assert not unknown, f"not aws-sqs-queue parameters: {unknown}"


def _validate(obj: dict[str, Any]) -> None:
    if obj["kind"] in CORE_KINDS:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(obj, desired_version=version, strict=True)
    else:
        _validate_keda(obj)


def _container() -> dict[str, Any]:
    (container,) = _one("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def _worker_env() -> dict[str, str]:
    """The container's non-secret F5_WORKER_* variables: its ConfigMaps (envFrom), then its own env over them."""
    configmap = _one("ConfigMap")
    env: dict[str, str] = {}
    for source in _container().get("envFrom", []):
        if "configMapRef" in source:
            assert source["configMapRef"]["name"] == configmap["metadata"]["name"]
            env |= configmap["data"]
        if "secretRef" in source:  # the health token comes from the Secret
            secret = _one("Secret")
            assert source["secretRef"]["name"] == secret["metadata"]["name"]
            env |= secret["stringData"]
    env |= {e["name"]: e["value"] for e in _container().get("env", []) if "value" in e}
    return {k: v for k, v in env.items() if k.startswith(ENV_PREFIX)}


@pytest.fixture
def worker_settings(monkeypatch: pytest.MonkeyPatch) -> WorkerSettings:
    """WorkerSettings as the pod reads them: the manifests' values, the defaults for the rest."""
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in _worker_env().items():
        monkeypatch.setenv(name, value)
    return WorkerSettings()


def _fleet_default(name: str) -> Any:
    return FleetSettings.model_fields[name].default


def _whole(value: float) -> int:
    assert value == int(value), f"{value}: KEDA and the HPA take whole numbers"
    return int(value)


def _dockerfile_runtime() -> str:
    return (REPO / "Dockerfile").read_text(encoding="utf-8").split("AS runtime", 1)[1]


# --- every object is valid ----------------------------------------------------------------------------------------
def test_every_document_is_a_known_kind():
    kinds = sorted(doc["kind"] for doc in _documents())
    assert kinds == sorted([*CORE_KINDS, *KEDA_MODELS, "Kustomization"])


@pytest.mark.parametrize("kind", sorted([*CORE_KINDS, *KEDA_MODELS]))
def test_object_is_valid(kind):
    _validate(_one(kind))


def test_kustomization_lists_every_manifest_but_the_example_secret():
    kustomization = _one("Kustomization")
    assert set(kustomization) == {"apiVersion", "kind", "resources"}
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(kustomization["resources"]) == sorted(manifests)


def _parent(obj: dict[str, Any], key: str) -> tuple[Any, str]:
    *path, last = key.split(".")
    for part in path:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj, last


def _rename(key: str, to: str) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        parent, last = _parent(obj, key)
        parent[to] = parent.pop(last)

    return mutate


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        parent, last = _parent(obj, key)
        parent[last] = value

    return mutate


K8S_ERROR, KEDA_ERROR = kubernetes_validate.ValidationError, pydantic.ValidationError
NOT_A_FIELD = "not fields of KEDA's model"


@pytest.mark.parametrize(
    ("kind", "mutate", "error", "match"),
    [
        pytest.param(
            "Deployment",
            _rename("spec.template.spec.terminationGracePeriodSeconds", "terminationGracePeriodSecond"),
            K8S_ERROR,
            "Additional properties are not allowed",
            id="deployment-typo",
        ),
        pytest.param(
            "Deployment",
            _set("spec.template.spec.containers.0.securityContext.readOnlyRootFilesystem", "yes"),
            K8S_ERROR,
            "is not of type 'boolean'",
            id="deployment-wrong-type",
        ),
        pytest.param(
            "ConfigMap",
            _set("data.F5_WORKER_SHUTDOWN_GRACE_S", 60),
            K8S_ERROR,
            "is not of type 'string'",
            id="configmap-unquoted-number",
        ),
        pytest.param(
            "ScaledObject",
            _rename("spec.cooldownPeriod", "coolDownPeriod"),
            AssertionError,
            NOT_A_FIELD,
            id="scaledobject-typo",
        ),
        pytest.param(
            "ScaledObject",
            _set("spec.minReplicaCount", "0"),
            KEDA_ERROR,
            "minReplicaCount",
            id="scaledobject-wrong-type",
        ),
        pytest.param(
            "ScaledObject",
            _set("spec.triggers.0.metadata.includeNonVisibleMessages", "true"),
            AssertionError,
            "not aws-sqs-queue parameters",
            id="scaledobject-invented-trigger-parameter",
        ),
        pytest.param(
            "TriggerAuthentication",
            _rename("spec.secretTargetRef", "secretTargetRefs"),
            AssertionError,
            NOT_A_FIELD,
            id="triggerauthentication-typo",
        ),
    ],
)
def test_a_broken_object_is_rejected(kind, mutate, error, match):
    obj = _one(kind)
    mutate(obj)
    with pytest.raises(error, match=match):
        _validate(obj)


# --- the objects refer to each other -------------------------------------------------------------------------------
def test_references_agree():
    deployment, configmap, secret = _one("Deployment"), _one("ConfigMap"), _one("Secret")
    scaled, auth = _one("ScaledObject"), _one("TriggerAuthentication")
    template = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count"
    assert _container()["envFrom"] == [
        {"configMapRef": {"name": configmap["metadata"]["name"]}},
        {"secretRef": {"name": secret["metadata"]["name"]}},
    ]
    assert scaled["spec"]["scaleTargetRef"] == {"name": deployment["metadata"]["name"]}  # kind: Deployment
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]
    assert {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]} == {"awsAccessKeyID", "awsSecretAccessKey"}
    assert trigger["metadata"]["queueURL"] == configmap["data"]["F5_WORKER_QUEUE_URL"]
    assert trigger["metadata"]["awsRegion"] == configmap["data"]["F5_WORKER_AWS_REGION"]


def test_the_example_secret_holds_placeholders_only():
    secret = _one("Secret")
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "F5_WORKER_HEALTH_TOKEN"}
    assert "data" not in secret
    for value in secret["stringData"].values():
        assert value.startswith("REPLACE_WITH_"), value
    assert "Never commit real keys" in (K8S / "secret.example.yaml").read_text(encoding="utf-8")


def test_configmap_names_real_settings(worker_settings):
    env = _worker_env()
    unknown = sorted(n for n in env if n.removeprefix(ENV_PREFIX).lower() not in ALL_FIELDS)
    assert not unknown, f"not settings (a typo is ignored by the worker): {unknown}"
    assert worker_settings.queue_url == env["F5_WORKER_QUEUE_URL"]


# --- the worker's shutdown, probes and sandbox -----------------------------------------------------------------------
def test_termination_grace_is_derived_from_the_shutdown_grace(worker_settings):
    grace, wait = worker_settings.shutdown_grace_s, worker_settings.wait_time_s
    pod = _one("Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == math.ceil(grace + wait + SHUTDOWN_MARGIN_S)
    # The comment that states the formula shows the same numbers.
    text = (K8S / "deployment.yaml").read_text(encoding="utf-8")
    formula = re.search(
        r"terminationGracePeriodSeconds = F5_WORKER_SHUTDOWN_GRACE_S \+ F5_WORKER_WAIT_TIME_S \+ margin"
        r" = (\d+) \+ (\d+) \+ (\d+)\n",
        text,
    )
    assert formula, "deployment.yaml: the formula comment is missing"
    assert tuple(int(n) for n in formula.groups()) == (grace, wait, SHUTDOWN_MARGIN_S)


def test_probes_point_at_the_health_server():
    container = _container()
    port = int(re.search(r"F5_WORKER_HEALTH_PORT=(\d+)", _dockerfile_runtime()).group(1))
    port = int(_worker_env().get("F5_WORKER_HEALTH_PORT", port))
    assert port in {p["containerPort"] for p in container["ports"]}
    probes = {name: container[name]["httpGet"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes == {
        "startupProbe": {"path": "/readyz", "port": port},
        "livenessProbe": {"path": "/healthz", "port": port},
        "readinessProbe": {"path": "/readyz", "port": port},
    }
    # The startup probe gives the model as long as the image's HEALTHCHECK start period.
    start_period = int(
        re.search(
            r'HEALTHCHECK [^\n]*--start-period=(\d+)s[^\n]*CMD \["f5-worker", "check"\]', _dockerfile_runtime()
        ).group(1)
    )
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= start_period
    # The paths exist: alive while loading, ready once loaded.
    server = HealthServer(Metrics(), max_poll_age_s=90.0, port=0, host="127.0.0.1").start()
    try:
        assert [server.respond(p)[0] for p in ("/healthz", "/readyz")] == [200, 503]
        server.mark_ready()
        assert [server.respond(p)[0] for p in ("/healthz", "/readyz")] == [200, 200]
    finally:
        server.close()


def test_the_container_is_non_root_with_a_read_only_root_and_one_gpu():
    pod = _one("Deployment")["spec"]["template"]["spec"]
    container = _container()
    assert "USER 10001:10001" in _dockerfile_runtime()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume
    assert container["resources"]["limits"]["nvidia.com/gpu"] in (1, "1")


# --- KEDA scales like our fleet policy ------------------------------------------------------------------------------
def test_scaledobject_matches_the_fleet_policy_defaults():
    spec = _one("ScaledObject")["spec"]
    (trigger,) = spec["triggers"]
    meta = trigger["metadata"]
    per_pod = _fleet_default("fleet_fallback_rate") * _fleet_default("fleet_target_drain_s")
    assert int(meta["queueLength"]) == round(per_pod) and math.isclose(per_pod, round(per_pod))
    assert meta["activationQueueLength"] == "0"
    assert (meta["scaleOnInFlight"], meta["scaleOnDelayed"]) == ("true", "true")  # backlog = visible+in flight+delayed
    assert spec["minReplicaCount"] == _fleet_default("fleet_min_pods")
    assert spec["maxReplicaCount"] == _fleet_default("fleet_max_pods")
    assert spec["cooldownPeriod"] == _whole(_fleet_default("fleet_empty_window_s"))
    assert spec["pollingInterval"] == _whole(_fleet_default("fleet_interval_s"))
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    cooldown = _whole(_fleet_default("fleet_cooldown_s"))
    assert behavior["scaleDown"] == {
        "stabilizationWindowSeconds": cooldown,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": cooldown}],
    }
    assert behavior["scaleUp"] == {
        "stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": _fleet_default("fleet_max_changes_per_minute"), "periodSeconds": 60}],
    }


def test_keda_replica_count_equals_the_policy_target_for_every_backlog():
    """KEDA: 0 at or below activation, else the HPA's ceil(messages / queueLength) within [max(min, 1), max];
    ours: clamp(needed_pods(backlog, rate, drain), min, max)."""
    spec = _one("ScaledObject")["spec"]
    meta = spec["triggers"][0]["metadata"]
    length, activation = int(meta["queueLength"]), int(meta["activationQueueLength"])
    lo, hi = spec["minReplicaCount"], spec["maxReplicaCount"]
    rate, drain = _fleet_default("fleet_fallback_rate"), _fleet_default("fleet_target_drain_s")
    for backlog in range(0, 10 * length * hi):
        keda = max(lo, 0 if backlog <= activation else min(hi, max(1, lo, math.ceil(backlog / length))))
        ours = max(
            _fleet_default("fleet_min_pods"), min(needed_pods(backlog, rate, drain), _fleet_default("fleet_max_pods"))
        )
        assert keda == ours, f"backlog {backlog}: KEDA {keda}, policy {ours}"
