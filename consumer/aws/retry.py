"""In-process retries for transient AWS errors (on top of botocore's own, whose retry quota can run dry
under sustained faults). Only errors that a second try can fix are retried: connection drops, timeouts,
throttling and 5xx. Conditional-write conflicts and 4xx are answers, not faults."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random_exponential

from consumer.aws.clients import error_code, http_status

_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "KMS.ThrottlingException",
}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, BotoCoreError):
        return True
    if isinstance(exc, ClientError):
        return error_code(exc) in _TRANSIENT_CODES or http_status(exc) >= 500
    return False


aws_retry = retry(
    retry=retry_if_exception(is_transient),
    wait=wait_random_exponential(multiplier=0.1, max=2),
    stop=stop_after_attempt(3),
    reraise=True,
)
