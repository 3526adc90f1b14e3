"""In-process retries for transient AWS errors (on top of botocore's own, whose retry quota can run dry
under sustained faults). Only errors that a second try can fix are retried: connection drops, timeouts,
throttling and 5xx. Conditional-write conflicts and 4xx are answers, not faults."""

from __future__ import annotations

from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from consumer.aws.failures import is_transient

aws_retry = retry(
    retry=retry_if_exception(is_transient),
    wait=wait_random_exponential(multiplier=0.1, max=2),
    stop=stop_after_attempt(3),
    reraise=True,
)
