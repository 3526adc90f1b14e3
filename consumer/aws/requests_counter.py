"""Counting a process's AWS calls by operation (`ReceiveMessage`, `GetObject`, ...) on a Prometheus counter: the
worker's `f5_worker_aws_requests_total` and the API's `f5_api_aws_requests_total` are both filled here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter


def count_aws_requests(clients: Iterable[Any], counter: Counter, *, unique_id: str | None = None) -> None:
    """Every call of these boto3 clients adds one to `counter` (labelled `operation`). With `unique_id`, a client
    counts once per id: registering again on the same client (a second worker on shared clients) changes nothing,
    so the first counter registered keeps counting."""

    def count(model: Any, **_: Any) -> None:
        counter.labels(model.name).inc()

    for client in clients:
        client.meta.events.register("provide-client-params", count, unique_id=unique_id)
