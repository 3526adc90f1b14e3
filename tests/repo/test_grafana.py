"""deploy/grafana: the committed dashboard is what build.py generates, it has every panel the fleet's operators
rely on, and every metric its PromQL names is one that a real worker's /metrics (after a completed and a failed
job) or the fleet controller's registry exports."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from types import ModuleType
from typing import Any

import promql_parser
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from consumer.fleet.controller import Controller
from consumer.fleet.policy import Policy
from consumer.fleet.providers.base import Pod
from tests.conftest import Stack, new_stack
from tests.paths import REPO

GRAFANA = REPO / "deploy" / "grafana"
# What the dashboard must show (issue #27): dropping or renaming one of these panels fails the test.
REQUIRED_PANELS = {
    "Throughput",
    "RTF",
    "Queue wait",
    "End-to-end latency",
    "Failures by error code",
    "In flight",
    "Heartbeats",
    "Start-up phases",
    "Device duty",
    "Fleet size",
    "Fleet decisions",
    "AWS requests by operation",
    "Dead-letter queue",
}
# Grafana's built-in interval variables, as Grafana substitutes them before the query reaches Prometheus.
_GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "6h"}


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_build", GRAFANA / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "f5-worker.json").read_text())


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in _panels(dashboard) for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects, from its syntax tree (a syntax error raises ValueError)."""
    for variable, value in _GRAFANA_INTERVALS.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a dashboard variable the test cannot substitute: {expr}"
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            by_matcher = [m.value for m in node.matchers.matchers if m.name == "__name__"]
            names.update([node.name] if node.name else by_matcher)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def exported_series(exposition: str) -> set[str]:
    """The series names an exposition holds: its samples' names, so with the suffixes Prometheus stores them under
    (a counter's `_total`; a histogram's `_bucket`, `_sum`, `_count`), never a family's bare name."""
    return {sample.name for family in text_string_to_metric_families(exposition) for sample in family.samples}


def missing_metrics(expressions: list[str], exported: set[str]) -> set[str]:
    return {name for expr in expressions for name in metric_names(expr)} - exported


def test_the_committed_dashboard_is_what_build_py_generates():
    assert (GRAFANA / "f5-worker.json").read_text() == _build_module().render(), (
        "deploy/grafana/f5-worker.json is stale: run `python deploy/grafana/build.py`"
    )


def test_the_dashboard_has_every_required_panel_each_with_a_query_on_the_datasource_variable():
    dashboard = _dashboard()
    titles = [panel["title"] for panel in _panels(dashboard)]
    assert REQUIRED_PANELS - set(titles) == set()
    assert len(titles) == len(set(titles)), "two panels with one title"
    assert [v["name"] for v in dashboard["templating"]["list"] if v["type"] == "datasource"] == ["datasource"]
    for panel in _panels(dashboard):
        assert panel["targets"], panel["title"]
        for source in [panel["datasource"], *(t["datasource"] for t in panel["targets"])]:
            assert source == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_metric_names_come_from_the_syntax_tree():
    expr = 'histogram_quantile(0.95, sum by (le) (rate(a_bucket{code="b_total"}[$__rate_interval]))) / on() c'
    assert metric_names(expr) == {"a_bucket", "c"}  # not the label value, not the function
    assert metric_names('{__name__="d_total"}') == {"d_total"}
    with pytest.raises(ValueError):
        metric_names("sum by (code (rate(a_total[1m]))")


class FixedFleet:
    name = "fixed"

    def pods(self) -> list[Pod]:
        return [Pod("p0", "running", 0.0)]

    def start(self, count: int) -> list[Pod]:
        raise AssertionError("a dry run starts nothing")

    def stop(self, pod_ids: list[str]) -> None:
        raise AssertionError("a dry run stops nothing")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _worker_after_a_done_and_a_failed_job(stack: Stack) -> str:
    """`f5-worker run` (fake engine) as a process; its /metrics once it has completed one job and failed one."""
    stack.send(json.dumps({"job_id": "dash-ok", "text": "Hello.", "voice": {"voice_id": "basic-en"}}))
    stack.send(json.dumps({"job_id": "dash-bad", "text": "Hello.", "voice": {"voice_id": "nobody"}}))
    port = _free_port()
    settings = {
        "aws_endpoint_url": stack.endpoint_url,
        "queue_url": stack.resources.queue_url,
        "bucket": stack.resources.bucket,
        "topic_arn": stack.resources.topic_arn,
        "engine": "fake",
        "wait_time_s": 1,
        "health_port": port,
        "log_json": "true",
    }
    env = os.environ | {f"F5_WORKER_{key.upper()}": str(value) for key, value in settings.items()}
    proc = subprocess.Popen([sys.executable, "-m", "consumer", "run"], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline, text = time.monotonic() + 90, ""
        done = ('f5_worker_jobs_total{outcome="done"} 1.0', 'f5_worker_jobs_total{outcome="failed"} 1.0')
        while not all(line in text for line in done):
            assert time.monotonic() < deadline, f"the worker handled no done and failed job:\n{text}"
            time.sleep(0.3)
            try:
                text = _scrape(port)
            except OSError:
                text = ""  # not listening yet
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    return text


def _controller_after_a_decision(stack: Stack) -> str:
    controller = Controller(
        Policy(max_pods=4), FixedFleet(), sqs=stack.clients.sqs, queue_url=stack.resources.queue_url, lease=None
    )
    controller.step()
    return generate_latest(controller.metrics.registry).decode()


@pytest.fixture(scope="module")
def exported(aws_endpoint: str) -> set[str]:
    stack = new_stack(aws_endpoint)
    return exported_series(_worker_after_a_done_and_a_failed_job(stack) + _controller_after_a_decision(stack))


def test_every_metric_the_dashboard_names_is_exported(exported):
    expressions = _expressions(_dashboard())
    assert len(expressions) >= len(REQUIRED_PANELS)
    assert {"f5_worker_failures_total", "f5_worker_job_latency_seconds_bucket"} <= exported
    assert missing_metrics(expressions, exported) == set()


def test_a_misspelt_or_missuffixed_metric_in_the_dashboard_is_caught(exported):
    text = json.dumps(_dashboard())
    broken = re.sub(r"\bf5_worker_failures_total\b", "f5_worker_failure_total", text)
    broken = re.sub(r"\bf5_worker_real_time_factor_bucket\b", "f5_worker_real_time_factor_total", broken)
    broken = re.sub(r"\bf5_worker_fleet_pods\b", "f5_worker_fleet_pod", broken)
    assert missing_metrics(_expressions(json.loads(broken)), exported) == {
        "f5_worker_failure_total",
        "f5_worker_real_time_factor_total",
        "f5_worker_fleet_pod",
    }
