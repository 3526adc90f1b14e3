"""deploy/prometheus: the alert rules load (`promtool check rules`) and behave as their tests say (`promtool test
rules`); every alert has a case where it fires and one where it stays quiet; every metric they name is one the
code exports, and every doc they point to exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from consumer.core.metrics import Metrics
from consumer.fleet.controller import FleetMetrics
from tests.paths import REPO

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count", "")}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent)


def exported_names(*registries: CollectorRegistry) -> set[str]:
    """The series names the registries expose, labelled ones with no child yet included."""
    names = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def _alerts() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules():
    result = _promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_promtool_runs_the_rule_tests():
    result = _promtool("test", "rules", TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    alerts = {rule["alert"] for rule in _alerts()}
    assert set(cases) == alerts  # no alert untested, no test of an alert that is gone
    assert {name: fires for name, fires in cases.items() if fires != {True, False}} == {}


def test_every_alert_has_a_for_a_severity_and_annotations():
    for rule in _alerts():
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_exported_names_cover_counters_histograms_and_labelled_metrics():
    names = exported_names(Metrics().registry, FleetMetrics().registry)
    assert {"f5_worker_jobs_total", "f5_worker_synthesis_seconds_bucket", "f5_worker_fleet_pods"} <= names
    assert "f5_worker_jobs" not in names


def test_every_metric_the_rules_and_their_tests_name_is_exported_by_the_code():
    exported = exported_names(Metrics().registry, FleetMetrics().registry)
    named = set(re.findall(r"\bf5_worker_[a-z0-9_]*[a-z0-9]\b", RULES.read_text() + TESTS.read_text()))
    assert named, "the rules name no f5_worker_ metric"
    assert named - exported == set()


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_doc_the_alerts_point_to_exists():
    text = yaml.safe_dump([rule["annotations"] for rule in _alerts()], width=1000)
    links = set(re.findall(r"\bdocs/[\w.-]+\.md(?:#[\w-]+)?", text))
    assert links
    for link in sorted(links):
        path, _, anchor = link.partition("#")
        assert (REPO / path).is_file(), link
        headings = re.findall(r"^#+ (.+)$", (REPO / path).read_text(), flags=re.MULTILINE)
        assert not anchor or anchor in {_anchor(h) for h in headings}, link
