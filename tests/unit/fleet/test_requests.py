"""The AWS request model (`consumer/fleet/requests.py`): the rates it derives, that `status` does not grow with the
volume, the cost goal, and docs/scaling.md's table being its output."""

from __future__ import annotations

import re

import pytest

from consumer.fleet.requests import S3_PUT_PER_PREFIX, Load, render_table, workers_for
from tests.paths import REPO


def test_index_segments_follow_the_fleet_not_the_jobs():
    # 100 workers at 10 jobs/s each write 20 entries/s: a full segment (100) every 5 s, 20 PUT/s in all
    assert Load(1000, 100, "dynamodb").segments_per_s == pytest.approx(20.0)
    # at a trickle each worker still writes at most one segment per flush interval
    assert Load(0.5, 4, "dynamodb", flush_s=5).segments_per_s == pytest.approx(0.8)
    # more entries than 100 per interval: one segment per 100 entries
    assert Load(1000, 10, "dynamodb").segments_per_s == pytest.approx(20.0)


@pytest.mark.parametrize("rate", [10, 100, 1000])
def test_every_s3_prefix_stays_under_its_rate_at_a_thousand_jobs_a_second(rate):
    for records in ("dynamodb", "s3"):
        for name, per_s, _ in Load(rate, workers_for(rate), records).rows():
            if name.startswith("S3"):
                assert per_s < S3_PUT_PER_PREFIX, (name, per_s)


def test_status_costs_the_same_at_any_volume_and_the_cost_goal_holds():
    assert {Load(r, workers_for(r), "dynamodb").status_requests() for r in (1, 10, 1000, 10_000)} == {8}
    assert Load(1000, 100, "dynamodb").usd_per_million_jobs() <= 10.0
    assert Load(1000, 100, "s3").usd_per_million_jobs() > 10.0  # two S3 PUTs a job for records alone: $10


def test_the_docs_table_is_the_generated_one():
    text = (REPO / "docs" / "scaling.md").read_text()
    found = re.search(r"<!-- aws-load -->\n(.*?)<!-- /aws-load -->", text, re.S)
    assert found is not None, "docs/scaling.md lost its table of AWS load"
    assert found.group(1) == render_table(), "regenerate it: python -m consumer.fleet.requests"
    assert "1,000 jobs a second, 100 workers" in found.group(1)
