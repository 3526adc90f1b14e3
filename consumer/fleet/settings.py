"""The fleet's policy from its settings (F5_WORKER_FLEET_*, command-line flags first)."""

from __future__ import annotations

from typing import Any

from consumer.core.settings import FleetSettings, load_role
from consumer.fleet.policy import Policy


def load_fleet_settings(**overrides: Any) -> FleetSettings:
    """The `scale` settings; a bad one is a ConfigurationError naming its variable (exit 2)."""
    return load_role(FleetSettings, **{k: v for k, v in overrides.items() if v is not None})


def policy_of(settings: FleetSettings) -> Policy:
    return Policy(
        min_pods=settings.fleet_min_pods,
        max_pods=settings.fleet_max_pods,
        target_drain_s=settings.fleet_target_drain_s,
        fallback_rate_per_pod=settings.fleet_fallback_rate,
        cooldown_s=settings.fleet_cooldown_s,
        empty_window_s=settings.fleet_empty_window_s,
        max_changes_per_minute=settings.fleet_max_changes_per_minute,
        price_per_pod_hour=settings.fleet_price_per_pod_hour,
        max_dollars_per_hour=settings.fleet_max_dollars_per_hour,
    )
