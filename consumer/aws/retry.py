"""Every retry and backoff of the worker and the API, in one place, each named for what it protects.

One layer per call, never two stacked:

- `AWS_CALL` retries every AWS call of every client (S3, SQS, SNS), inside botocore (`install`: a `needs-retry`
  handler; botocore's own retries are off), so producers, the API and the worker get the same policy without
  wrapping each call. Only faults a second try can fix are retried: connection drops, timeouts, throttling, 5xx;
  a conditional write's conflict or a 4xx is an answer, not a fault. Two operations are left to their own policy:
- `EVENT_PUBLISH` for SNS `Publish` (the worker's events: `notify_attempts` tries; a publish that still fails
  keeps the message, whose next delivery replays the event), and
- `QUEUE_POLL` for SQS `ReceiveMessage` (the poll loop never gives up).
- `HEARTBEAT_EXTENSION`: a failed beat is tried again after 0.5 s for as long as the visibility lasts.
- `WEBHOOK_INLINE` for the sender pool's POSTs (`webhook_inline_attempts`), then `DELIVERY_TASK` for the queued
  delivery tasks' backoff (`webhook_retry_base_s` · 2^n, at most 15 minutes, `webhook_max_attempts`).
- `QUEUE_BACKOFF`: how long a retried job's message stays hidden, from its receive count.
- `OPTIMISTIC_WRITE`: read-modify-write of a job record against concurrent writers (If-Match), no wait.

`python -m consumer.aws.retry` prints the table of docs/architecture.md (a test keeps them equal).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from consumer.aws.failures import is_throttled_response, is_transient, is_transient_response
from consumer.core.settings import Settings

if TYPE_CHECKING:
    from tenacity import RetryCallState, Retrying

MAX_TASK_DELAY_S = 900  # SQS's largest DelaySeconds / visibility change we use for a delivery task


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: after failed try n the ceiling is min(`max_s`, `base_s` · 2^(n-1)); `jitter` says where
    the wait falls under it: "full" (anywhere), "upper half", or "none" (the ceiling)."""

    name: str
    protects: str
    tries: int | None  # None: until stopped
    base_s: float
    max_s: float
    jitter: str = "full"
    per_try: str = ""  # the time one try may take, as documented (its timeouts)

    def ceiling_s(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * 2 ** max(0, attempt - 1))

    def delay_s(self, attempt: int) -> float:
        """The wait after failed try `attempt` (1-based)."""
        ceiling = self.ceiling_s(attempt)
        low = {"full": 0.0, "upper half": ceiling / 2, "none": ceiling}[self.jitter]
        return random.uniform(low, ceiling)

    def waits_s(self) -> float:
        """The longest total wait between tries (a policy with no end has none)."""
        if self.tries is None:
            return float("inf")
        return sum(self.ceiling_s(n) for n in range(1, self.tries))

    def retrying(
        self,
        retry_on: Callable[[BaseException], bool] = lambda _exc: False,
        *,
        retry_result: Callable[[Any], bool] = lambda _result: False,
        sleep: Callable[[float], Any] | None = None,
        before_sleep: Callable[[RetryCallState], None] | None = None,
    ) -> Retrying:
        """A tenacity `Retrying` with this policy's tries and waits. It tries again after an exception `retry_on`
        accepts or a result `retry_result` accepts; when the tries run out, the last result is returned or the
        last exception raised. `sleep`: how a wait is spent (default `time.sleep`; an event's `wait` ends early on
        stop)."""
        # imported here: the clients (`install`) load this module where tenacity is not installed (the LocalStack
        # hook's container, tests/repo/test_layout.py)
        from tenacity import Retrying, retry_if_exception, retry_if_result, stop_after_attempt, stop_never

        return Retrying(
            stop=stop_never if self.tries is None else stop_after_attempt(self.tries),
            wait=lambda state: self.delay_s(state.attempt_number),
            retry=retry_if_exception(retry_on) | retry_if_result(retry_result),
            sleep=sleep or _sleep,
            before_sleep=before_sleep,
            retry_error_callback=_last_outcome,
        )


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # looked up at each wait (tests replace `time.sleep`)


def _last_outcome(state: RetryCallState) -> Any:
    """What the last try returned, or its exception raised: a policy that gives up hands back what it got."""
    assert state.outcome is not None
    return state.outcome.result()


AWS_CALL = Backoff(
    "AWS_CALL",
    "every S3, SQS and SNS call (but `Publish` and `ReceiveMessage`)",
    tries=4,
    base_s=0.1,
    max_s=2.0,
    per_try="connect 5 s + read 60 s (S3), 30 s (SNS), long poll + 10 s (SQS)",
)
AWS_THROTTLED = Backoff(
    "AWS_THROTTLED",
    "an AWS call answered with throttling (S3 503 SlowDown, 429, Throttling): backpressure, S3's advice",
    tries=8,
    base_s=0.25,
    max_s=4.0,
    jitter="upper half",
    per_try="as AWS_CALL",
)
EVENT_PUBLISH = Backoff(
    "EVENT_PUBLISH",
    "an event's SNS `Publish` (tries: `notify_attempts`)",
    tries=4,
    base_s=0.2,
    max_s=8.0,
    per_try="connect 5 s + read 30 s",
)
QUEUE_POLL = Backoff(
    "QUEUE_POLL", "the worker's long poll (`ReceiveMessage`)", tries=None, base_s=0.5, max_s=30.0, per_try="wait + 10 s"
)
WEBHOOK_INLINE = Backoff(
    "WEBHOOK_INLINE",
    "a webhook POST by the sender pool, before it becomes a queued task (tries: `webhook_inline_attempts`)",
    tries=3,
    base_s=0.5,
    max_s=8.0,
    jitter="none",
    per_try="`webhook_timeout_s` (10 s)",
)
DELIVERY_TASK = Backoff(
    "DELIVERY_TASK",
    "a queued webhook delivery task, hidden between tries (tries: `webhook_max_attempts`, waits from "
    "`webhook_retry_base_s`)",
    tries=8,
    base_s=30.0,
    max_s=float(MAX_TASK_DELAY_S),
    jitter="none",
    per_try="`webhook_timeout_s` (10 s)",
)
QUEUE_BACKOFF = Backoff(
    "QUEUE_BACKOFF",
    "a retried job: its message hidden (upper half of the ceiling) before its next receive; tries: the queue's "
    "`maxReceiveCount`, waits: `retry_base_delay_s`, `retry_max_delay_s`",
    tries=3,
    base_s=5.0,
    max_s=900.0,
    jitter="upper half",
    per_try="the job (`job_timeout_s`)",
)
HEARTBEAT_EXTENSION = Backoff(
    "HEARTBEAT_EXTENSION",
    "a job's heartbeat (visibility extension and claim renewal) after a transient failure",
    tries=None,
    base_s=0.5,
    max_s=0.5,
    jitter="none",
    per_try="until the current visibility runs out",
)
OPTIMISTIC_WRITE_TRIES = 8  # read, change, write If-Match: another writer's change means read again, at once

POLICIES = (
    AWS_CALL,
    AWS_THROTTLED,
    EVENT_PUBLISH,
    QUEUE_POLL,
    HEARTBEAT_EXTENSION,
    WEBHOOK_INLINE,
    DELIVERY_TASK,
    QUEUE_BACKOFF,
)
_OWN_POLICY = {"Publish", "ReceiveMessage"}  # retried by EVENT_PUBLISH and QUEUE_POLL, not by AWS_CALL


def queue_backoff_s(receive_count: int, settings: Settings) -> int:
    """How long a retried job's message stays hidden (QUEUE_BACKOFF with the worker's settings)."""
    policy = replace(QUEUE_BACKOFF, base_s=settings.retry_base_delay_s, max_s=settings.retry_max_delay_s)
    return int(policy.delay_s(receive_count))


def delivery_task_delay_s(attempt: int, base_s: float) -> int:
    """Delay before queued delivery attempt `attempt + 1` (DELIVERY_TASK from `base_s`): base · 2^(attempt-1), at
    most 15 minutes."""
    return int(replace(DELIVERY_TASK, base_s=base_s).delay_s(attempt))


def install(client: Any) -> None:
    """Give `client` the AWS_CALL policy (its own botocore retries must be off: `total_max_attempts` 1)."""

    def needs_retry(
        attempts: int, operation: Any, response: Any = None, caught_exception: Any = None, **_: Any
    ) -> float | None:
        if operation.name in _OWN_POLICY:
            return None
        if caught_exception is None and is_throttled_response(response):
            # over the service's request rate: wait longer and try more often, spread out (upper-half jitter),
            # so the calls in flight slow down to what the service takes instead of failing their jobs
            return AWS_THROTTLED.delay_s(attempts) if attempts < (AWS_THROTTLED.tries or 0) else None
        if attempts >= (AWS_CALL.tries or 0):
            return None
        transient = is_transient(caught_exception) if caught_exception is not None else is_transient_response(response)
        return AWS_CALL.delay_s(attempts) if transient else None

    client.meta.events.register("needs-retry", needs_retry, unique_id="f5-worker-aws-call")


def render_table() -> str:
    """The policies as the markdown table of docs/architecture.md."""
    rows = [
        "| policy | protects | tries | waits between tries | worst case |",
        "|---|---|---|---|---|",
    ]
    for policy in POLICIES:
        tries = "until stopped" if policy.tries is None else str(policy.tries)
        shape = {"full": "random up to ", "upper half": "random, upper half of ", "none": ""}[policy.jitter]
        waits = f"{shape}min({policy.max_s:g} s, {policy.base_s:g} s · 2^(n-1))"
        if policy.tries is None:
            worst = "never gives up" if policy is QUEUE_POLL else policy.per_try
        else:
            worst = f"{policy.tries} x ({policy.per_try}) + {policy.waits_s():g} s of waits"
        rows.append(f"| `{policy.name}` | {policy.protects} | {tries} | {waits} | {worst} |")
    rows.append(
        f"| `OPTIMISTIC_WRITE` | a job record's read-modify-write (cancel, delivery log) | {OPTIMISTIC_WRITE_TRIES} "
        "| none (a conflict means read again) | 8 x (GET + PUT) |"
    )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render_table(), end="")
