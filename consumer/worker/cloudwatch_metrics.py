"""Optional CloudWatch metrics of one worker (`cloudwatch_metrics`, off by default).

Every `cloudwatch_metrics_interval_s` one PutMetricData call sends what happened since the last one, read from the
worker's `Metrics`: JobsCompleted, JobsFailed (in all, and by ErrorCode for each code seen), and the statistic sets
(count, sum, min, max) of RealTimeFactor and QueueWaitSeconds. The only dimension is the queue's name: every worker
on a queue adds to the same few metrics, whatever the fleet's size. When the worker stops, one last call sends the
interval it was in.

It never breaks the worker: a failed call is logged once per kind of error, and what it held goes with the next
interval's call.
"""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import ClientError

from consumer.aws.clients import make_cloudwatch
from consumer.aws.requests_counter import count_aws_requests
from consumer.core.logs import get_logger
from consumer.core.metrics import Metrics, StatSet, WindowedHistogram
from consumer.core.settings import WorkerSettings

log = get_logger(__name__)


class CloudWatchPublisher:
    def __init__(
        self,
        cloudwatch: Any,
        metrics: Metrics,
        *,
        namespace: str,
        queue_name: str,
        interval_s: float,
        close_timeout_s: float = 10.0,
    ) -> None:
        self.cloudwatch = cloudwatch
        self.metrics = metrics
        self.namespace = namespace
        self.queue = {"Name": "Queue", "Value": queue_name}
        self.interval_s = interval_s
        self.close_timeout_s = close_timeout_s  # the last call may not hold up the worker's exit longer
        self._stats: dict[str, tuple[WindowedHistogram, str]] = {
            "RealTimeFactor": (metrics.real_time_factor, "None"),
            "QueueWaitSeconds": (metrics.queue_wait_seconds, "Seconds"),
        }
        # What the last successful call covered (the counters count from the process's start).
        self._sent_done = metrics.count("done")
        self._sent_failures = metrics.failures_by_code()
        self._pending: dict[str, StatSet] = {}  # statistic sets taken but not sent yet
        self._logged: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cloudwatch-metrics", daemon=True)

    def start(self) -> CloudWatchPublisher:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop; the thread makes its last call (the current interval) first, waited for `close_timeout_s`."""
        self._stop.set()
        self._thread.join(self.close_timeout_s)
        if self._thread.is_alive():
            log.warning("cloudwatch_metrics_not_flushed", consequence="the last interval's figures are not sent")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.publish()
        self.publish()

    def publish(self) -> bool:
        """One PutMetricData with what happened since the last successful one. False when it failed (logged)."""
        try:
            done, failures = self.metrics.count("done"), self.metrics.failures_by_code()
            for name, (histogram, _) in self._stats.items():
                taken = histogram.take()
                if taken is not None:
                    held = self._pending.get(name)
                    self._pending[name] = taken if held is None else held + taken
            failed = {code: count - self._sent_failures.get(code, 0) for code, count in failures.items()}
            self.cloudwatch.put_metric_data(Namespace=self.namespace, MetricData=self._data(done, failed))
        except Exception as exc:  # noqa: BLE001 - metrics never break the worker: logged, sent next interval
            self._log_once(exc)
            return False
        self._sent_done, self._sent_failures, self._pending = done, failures, {}
        return True

    def _data(self, done: float, failed: dict[str, float]) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = [
            self._count("JobsCompleted", done - self._sent_done),
            self._count("JobsFailed", sum(failed.values())),
        ]
        data += [
            self._count("JobsFailed", count, {"Name": "ErrorCode", "Value": code})
            for code, count in sorted(failed.items())
            if count > 0
        ]
        for name, stats in sorted(self._pending.items()):
            data.append(
                {
                    "MetricName": name,
                    "Dimensions": [self.queue],
                    "StatisticValues": {
                        "SampleCount": stats.count,
                        "Sum": stats.total,
                        "Minimum": stats.low,
                        "Maximum": stats.high,
                    },
                    "Unit": self._stats[name][1],
                }
            )
        return data

    def _count(self, name: str, value: float, *more: dict[str, str]) -> dict[str, Any]:
        return {"MetricName": name, "Dimensions": [self.queue, *more], "Value": value, "Unit": "Count"}

    def _log_once(self, exc: Exception) -> None:
        kind = exc.response.get("Error", {}).get("Code", "ClientError") if isinstance(exc, ClientError) else None
        kind = kind or type(exc).__name__
        if kind in self._logged:
            return
        self._logged.add(kind)
        log.warning(
            "cloudwatch_metrics_failed",
            kind=kind,
            error=str(exc),
            consequence="sent with the next interval's call; this kind is logged once",
        )


def start_cloudwatch_metrics(
    settings: WorkerSettings, metrics: Metrics, cloudwatch: Any = None
) -> CloudWatchPublisher | None:
    """The publisher, started, when `cloudwatch_metrics` is on; else None (and no client is made)."""
    if not settings.cloudwatch_metrics:
        return None
    client = cloudwatch if cloudwatch is not None else make_cloudwatch(settings)
    count_aws_requests([client], metrics.aws_requests, unique_id="f5-worker-aws-requests")
    queue_name = settings.queue_url.rstrip("/").rsplit("/", 1)[-1]
    return CloudWatchPublisher(
        client,
        metrics,
        namespace=settings.cloudwatch_namespace,
        queue_name=queue_name,
        interval_s=settings.cloudwatch_metrics_interval_s,
    ).start()
