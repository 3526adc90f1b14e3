"""What an AWS error means, decided in one place: missing, conflict, forbidden, transient, gone; and the one way
to turn an S3 failure into a `StorageError` that keeps its cause."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

from consumer.core.errors import ConfigurationError, StorageError
from consumer.core.settings import Settings

_MISSING = {"NoSuchKey", "404", "NotFound"}
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "ConditionalCheckFailedException"}  # S3, DynamoDB
_FORBIDDEN = {"AccessDenied", "Forbidden", "403"}
_TRANSIENT = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
    "KMS.ThrottlingException",
    "ProvisionedThroughputExceededException",  # DynamoDB
    "RequestLimitExceeded",
    "InternalServerError",
}
_CREDENTIALS_REJECTED = {"InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "ExpiredToken"}
_NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "NonExistentQueue"}
RECEIPT_GONE_CODES = {
    "ReceiptHandleIsInvalid",
    "InvalidParameterValue",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
    "AWS.SimpleQueueService.NonExistentQueue",
}


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def http_status(exc: BaseException) -> int:
    """The HTTP status of a botocore ClientError (0 for anything else)."""
    response = getattr(exc, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def is_missing(exc: BaseException) -> bool:
    """The object (or key) does not exist. A missing bucket is a misconfiguration, not this."""
    return isinstance(exc, ClientError) and (error_code(exc) in _MISSING or http_status(exc) == 404)


def is_conflict(exc: BaseException) -> bool:
    """A conditional write lost: the object changed (or appeared) since we read it."""
    return isinstance(exc, ClientError) and (error_code(exc) in _CONFLICT or http_status(exc) in (409, 412))


def is_forbidden(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and (error_code(exc) in _FORBIDDEN or http_status(exc) == 403)


def is_transient(exc: BaseException) -> bool:
    """A fault a second try can fix: connection drops, timeouts, throttling, 5xx. 4xx answers are not."""
    if isinstance(exc, BotoCoreError):
        return True
    return isinstance(exc, ClientError) and (error_code(exc) in _TRANSIENT or http_status(exc) >= 500)


def is_transient_response(response: object) -> bool:
    """The same for a botocore response, `(http_response, parsed)`, before it becomes an exception."""
    if not isinstance(response, tuple) or len(response) != 2 or not isinstance(response[1], dict):
        return False
    parsed = response[1]
    code = str(parsed.get("Error", {}).get("Code", ""))
    status = int(parsed.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in _TRANSIENT or status >= 500 or status == 429


_THROTTLED = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
}


def is_throttled_response(response: object) -> bool:
    """A botocore response saying the caller is over the service's request rate (S3 503 SlowDown, 429, ...)."""
    if not isinstance(response, tuple) or len(response) != 2 or not isinstance(response[1], dict):
        return False
    parsed = response[1]
    code = str(parsed.get("Error", {}).get("Code", ""))
    status = int(parsed.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in _THROTTLED or status == 429


def is_receipt_gone(exc: BaseException) -> bool:
    """The SQS receipt handle is no longer valid (the message was redelivered or deleted)."""
    return isinstance(exc, ClientError) and error_code(exc) in RECEIPT_GONE_CODES


@contextmanager
def storage_errors(action: str) -> Iterator[None]:
    """Any botocore error raised inside becomes `StorageError("<action>: ...")`, chained to its cause."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"{action}: {exc}") from exc


def explain_aws_failure(exc: BotoCoreError | ClientError, settings: Settings) -> ConfigurationError:
    """What a user can do about an AWS failure that comes from the configuration (credentials, endpoint, names)."""
    where = settings.aws_endpoint_url or f"AWS ({settings.aws_region})"
    if isinstance(exc, NoCredentialsError):
        return ConfigurationError(
            "no AWS credentials",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE); for moto or LocalStack any values do,"
            " e.g. test/test",
        )
    if isinstance(exc, EndpointConnectionError):
        return _unreachable(exc, settings, where)
    if not isinstance(exc, ClientError):
        return ConfigurationError(f"cannot use {where}: {exc}", "check F5_WORKER_AWS_ENDPOINT_URL and the region")
    code = error_code(exc)
    if code in _CREDENTIALS_REJECTED:
        return ConfigurationError(
            f"{where} rejected the AWS credentials ({code})", "check AWS_ACCESS_KEY_ID / AWS_PROFILE"
        )
    if code in _NO_QUEUE:
        return ConfigurationError(
            f"queue {settings.queue_url} does not exist at {where}",
            "create it with `f5-worker init`, or correct F5_WORKER_QUEUE_URL",
        )
    if code == "NoSuchBucket" or (exc.operation_name == "HeadBucket" and http_status(exc) == 404):
        return ConfigurationError(
            f"bucket {settings.bucket} does not exist at {where}",
            "create it with `f5-worker init`, or correct F5_WORKER_BUCKET",
        )
    if code in ("AccessDenied", "403") or http_status(exc) == 403:
        return ConfigurationError(
            f"access denied at {where} ({exc.operation_name})",
            "grant the policy from `f5-worker infra` (WorkerPolicy or ProducerPolicy) to these credentials",
        )
    return ConfigurationError(f"{where} answered {code or exc}", "check the F5_WORKER_* AWS settings")


def _unreachable(exc: EndpointConnectionError, settings: Settings, where: str) -> ConfigurationError:
    """An emulator that is not running, or AWS itself out of reach (no network, a region that does not exist)."""
    if settings.aws_endpoint_url:
        return ConfigurationError(f"cannot reach {where}", "start it, or correct F5_WORKER_AWS_ENDPOINT_URL")
    url = exc.kwargs.get("endpoint_url", "")
    return ConfigurationError(
        f"cannot reach {where}{f' at {url}' if url else ''}",
        "check the network connection, the AWS credentials (AWS_PROFILE) and the region (F5_WORKER_AWS_REGION)",
    )
