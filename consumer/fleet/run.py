"""`f5-worker scale` put together: settings, clients, provider, lease, controller, signals."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import typer

from consumer.aws.clients import make_clients, make_cloudwatch
from consumer.core.errors import ConfigurationError, ProviderError
from consumer.core.logs import configure, get_logger
from consumer.core.settings import FleetSettings
from consumer.fleet.controller import Controller, FleetMetrics, controller_id
from consumer.fleet.lease import ControllerLease
from consumer.fleet.policy import Decision, Observation
from consumer.fleet.providers.base import Provider
from consumer.fleet.settings import load_fleet_settings, policy_of
from consumer.storage.job_index import JobIndex

log = get_logger(__name__)


def make_provider(settings: FleetSettings) -> Provider:
    if settings.fleet_provider == "runpod":
        from consumer.fleet.providers.runpod import RunPodProvider

        return RunPodProvider(settings)
    from consumer.fleet.providers.local import LocalProvider

    return LocalProvider(settings.fleet_name_prefix, settings.fleet_local_command, env=dict(os.environ))


def describe(decision: Decision) -> str:
    change = f"{decision.current} -> {decision.desired}" if decision.action != "hold" else f"{decision.current}"
    return (
        f"{decision.action:<4} {change:<8} needed {decision.needed} at {decision.rate_per_pod:.3g} jobs/s per worker: "
        f"{decision.reason}"
    )


def _echo(seen: Observation, decision: Decision) -> None:
    """--dry-run and --once: each decision on stdout with what it saw."""
    oldest = "?" if seen.oldest_age_s is None else f"{seen.oldest_age_s:.0f} s"
    typer.echo(
        f"visible {seen.visible} in flight {seen.in_flight} delayed {seen.delayed} oldest {oldest} "
        f"workers {seen.pods} | {describe(decision)}"
    )


def _required(settings: FleetSettings) -> None:
    for name, value in (("queue_url", settings.queue_url), ("bucket", settings.bucket)):
        if not value:
            variable = f"F5_WORKER_{name.upper()}"
            raise ConfigurationError(
                f"{variable} is not set: `scale` reads the queue and keeps its lease in the bucket",
                f"set {variable} (as the workers have it)",
            )


def run_scale(given: dict[str, Any], *, dry_run: bool, once: bool, metrics_port: int | None, stop_workers: bool) -> int:
    settings = load_fleet_settings(**given)
    _required(settings)
    configure(settings.log_level, settings.log_json)
    clients = make_clients(settings)
    provider = make_provider(settings)
    lease = None
    if not dry_run:
        lease = ControllerLease(
            clients.s3, settings.bucket, settings.fleet_lease_key, controller_id(), settings.fleet_lease_ttl_s
        )
    metrics = FleetMetrics()
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, registry=metrics.registry)
    controller = Controller(
        policy_of(settings),
        provider,
        sqs=clients.sqs,
        queue_url=settings.queue_url,
        lease=lease,
        index=JobIndex(clients.s3, settings.bucket, settings.jobs_index_prefix),
        cloudwatch=None if settings.aws_endpoint_url else make_cloudwatch(settings),
        interval_s=settings.fleet_interval_s,
        metrics=metrics,
        on_decision=_echo if dry_run or once else None,
    )
    try:
        if once:
            if controller.step() is None:
                typer.echo("another controller holds the lease: no decision")
            return 0
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        controller.run(stop)
    except ProviderError as exc:
        if not exc.config:
            raise
        raise ConfigurationError(
            str(exc), "fix the provider's setting named above; the fleet was left as it is"
        ) from None
    finally:
        if hasattr(provider, "close"):
            provider.close(stop_workers=stop_workers)
    return 0
