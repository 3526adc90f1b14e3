"""The fleet's Grafana dashboard, built in code with grafana-foundation-sdk (the `dev` extra).

    python deploy/grafana/build.py          # writes deploy/grafana/f5-worker.json beside this file

Every query reads Prometheus through the dashboard's `datasource` variable. tests/repo/test_grafana.py keeps the
committed JSON equal to what this builds, and checks that every metric a query names is one a worker or the fleet
controller exports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.bargauge import Panel as BarGauge
from grafana_foundation_sdk.builders.common import VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUTPUT = Path(__file__).resolve().with_name("f5-worker.json")
UID = "f5-worker-fleet"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"
WIDTH = 8  # three panels a row (the grid is 24 wide)
HEIGHT = 8


def _query(expr: str, legend: str, ref_id: str) -> Dataquery:
    return Dataquery().expr(expr).legend_format(legend).ref_id(ref_id).datasource(DATASOURCE)


def _quantiles(metric: str) -> list[tuple[str, str]]:
    """p50 and p95 of a histogram over all workers."""
    return [
        (f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{RATE})))", f"p{round(q * 100)}")
        for q in (0.5, 0.95)
    ]


def _timeseries(title: str, description: str, unit: str, queries: list[tuple[str, str]]) -> Timeseries:
    panel = (
        Timeseries()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(WIDTH)
        .height(HEIGHT)
        .legend(
            VizLegendOptions().show_legend(True).display_mode(LegendDisplayMode.LIST).placement(LegendPlacement.BOTTOM)
        )
    )
    for n, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + n)))
    return panel


def _rate_by(metric: str, label: str) -> list[tuple[str, str]]:
    return [(f"sum by ({label}) (rate({metric}{RATE}))", f"{{{{{label}}}}}")]


def _sections() -> list[tuple[str, list[Timeseries | BarGauge]]]:
    """The dashboard's rows, top to bottom, each with its panels, left to right."""
    startup = (
        BarGauge()
        .title("Start-up phases")
        .description(
            "Seconds from process start to each phase (settings, AWS checked, model loaded, warm-up, first poll): "
            "the slowest live worker's."
        )
        .datasource(DATASOURCE)
        .unit("s")
        .span(WIDTH)
        .height(HEIGHT)
        .with_target(_query("max by (phase) (f5_worker_startup_seconds)", "{{phase}}", "A").instant())
    )
    jobs = [
        _timeseries(
            "Throughput",
            "Messages handled per second, by outcome (done, failed, retry, replayed, deferred, returned, abandoned).",
            "reqps",
            _rate_by("f5_worker_jobs_total", "outcome"),
        ),
        _timeseries(
            "Failures by error code",
            "Jobs whose recorded outcome is a failure, per second, by error code (docs/errors.md).",
            "reqps",
            _rate_by("f5_worker_failures_total", "code"),
        ),
        _timeseries(
            "End-to-end latency",
            "Enqueue (the message's SentTimestamp) to the outcome recorded, completed and failed jobs.",
            "s",
            _quantiles("f5_worker_job_latency_seconds"),
        ),
    ]
    speed = [
        _timeseries(
            "RTF",
            "Real-time factor: synthesis seconds per audio second (below 1: faster than real time).",
            "none",
            _quantiles("f5_worker_real_time_factor"),
        ),
        _timeseries(
            "Queue wait", "Enqueue to first receive, completed jobs.", "s", _quantiles("f5_worker_queue_wait_seconds")
        ),
        _timeseries(
            "Device duty",
            "Share of the last 60 s each worker's engine was working on a job.",
            "percentunit",
            [("f5_worker_device_duty_ratio", "{{instance}}")],
        ).max(1),
    ]
    workers = [
        _timeseries(
            "In flight",
            "Messages being processed, by worker.",
            "short",
            [("sum by (instance) (f5_worker_in_flight)", "{{instance}}")],
        ),
        _timeseries(
            "Heartbeats",
            "Visibility extensions per second, all workers (long jobs keep their messages hidden).",
            "reqps",
            [(f"sum(rate(f5_worker_heartbeat_extensions_total{RATE}))", "extensions")],
        ),
        startup,
    ]
    fleet = [
        _timeseries(
            "Fleet size",
            "Workers running or starting, what the last decision asked for, and the most the policy allows.",
            "short",
            [
                ("f5_worker_fleet_pods", "pods"),
                ("f5_worker_fleet_desired_pods", "desired"),
                ("f5_worker_fleet_max_pods", "max"),
            ],
        ),
        _timeseries(
            "Fleet decisions",
            "The controller's decisions per second, by action.",
            "reqps",
            _rate_by("f5_worker_fleet_decisions_total", "action"),
        ),
        _timeseries(
            "Dead-letter queue",
            "Visible messages in the queue's DLQ, as the fleet controller last saw them: each waits for "
            "`f5-worker dlq` to redrive or drop it.",
            "short",
            [("f5_worker_fleet_dlq_messages", "DLQ messages")],
        ),
        _timeseries(
            "Oldest message age",
            "The oldest waiting message's age (CloudWatch's ApproximateAgeOfOldestMessage), as the fleet controller "
            "last saw it.",
            "s",
            [("f5_worker_fleet_oldest_message_age_seconds", "oldest message")],
        ),
    ]
    fleet = [panel.span(24 // len(fleet)) for panel in fleet]
    aws = [
        _timeseries(
            "AWS requests by operation",
            "AWS API calls per second made by the workers, by operation (ReceiveMessage, PutObject, ...).",
            "reqps",
            _rate_by("f5_worker_aws_requests_total", "operation"),
        ).span(24)
    ]
    return [("Jobs", jobs), ("Speed", speed), ("Workers", workers), ("Fleet", fleet), ("AWS", aws)]


def build() -> Dashboard:
    dashboard = (
        Dashboard("F5 worker fleet")
        .uid(UID)
        .tags(["f5-worker"])
        .refresh("1m")
        .time("now-6h", "now")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    ids = iter(range(1, 1000))
    for title, panels in _sections():
        dashboard = dashboard.with_row(Row(title).id(next(ids)))
        for panel in panels:
            dashboard = dashboard.with_panel(panel.id(next(ids)))
    return dashboard


def render() -> str:
    """The dashboard's JSON, as committed."""
    model: Any = build().build()
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render())
    print(f"wrote {OUTPUT}")
