"""The one interface every provider implements: list the fleet, start workers, stop workers gracefully."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from consumer.core.errors import ProviderError

__all__ = ["Pod", "PodState", "Provider", "ProviderError", "pick_to_stop"]

PodState = Literal["starting", "running", "stopping"]


@dataclass(frozen=True)
class Pod:
    pod_id: str
    state: PodState
    started_at: float  # wall clock (time.time()) when it was created
    busy: bool | None = None  # working on a job, where the provider can tell; None: unknown


class Provider(Protocol):
    name: str

    def pods(self) -> list[Pod]:
        """The fleet this controller owns (by name prefix): every pod not yet gone, stopping ones included."""
        ...

    def start(self, count: int) -> list[Pod]:
        """Start `count` workers; the ones started (fewer when capacity ran out; ProviderError when none)."""
        ...

    def stop(self, pod_ids: list[str]) -> None:
        """Stop these workers gracefully: SIGTERM, the worker finishes or hands back its job, then exits."""
        ...


def pick_to_stop(pods: list[Pod], count: int) -> list[Pod]:
    """The pods to stop first: starting ones (no work yet), then idle ones, then the youngest."""
    live = [p for p in pods if p.state != "stopping"]

    def rank(pod: Pod) -> tuple[int, int, float]:
        return (0 if pod.state == "starting" else 1, 1 if pod.busy else 0, -pod.started_at)

    return sorted(live, key=rank)[:count]
