"""The worker's error taxonomy. The class decides the queue action (see docs/errors.md):

- `PermanentError` → failure event, message deleted. Retrying cannot help.
- `RetryableError` → message kept; visibility set to a backoff; after maxReceiveCount the queue's
  redrive policy moves it to the DLQ (and the last attempt publishes a failure event).
- `LeaseLost` → this worker no longer owns the job; it stops without writing anything.
"""

from __future__ import annotations

from contracts.events import ErrorCode


class WorkerError(Exception):
    """Base of every error the lifecycle classifies."""

    code: ErrorCode = ErrorCode.INTERNAL
    retryable: bool = False

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class PermanentError(WorkerError):
    """Bad input or an impossible job: no retry will succeed."""


class InvalidRequest(PermanentError):
    code = ErrorCode.INVALID_REQUEST


class UnknownVoice(PermanentError):
    code = ErrorCode.UNKNOWN_VOICE


class BadReferenceAudio(PermanentError):
    code = ErrorCode.BAD_REFERENCE_AUDIO


class TextNotRepresentable(PermanentError):
    code = ErrorCode.TEXT_NOT_REPRESENTABLE


class ForbiddenLocation(PermanentError):
    """A bucket or key outside what this worker may read or write."""

    code = ErrorCode.FORBIDDEN_LOCATION


class RetryableError(WorkerError):
    """A transient failure: the message is retried after `delay_s` (or the backoff policy's delay)."""

    retryable = True

    def __init__(self, message: str, *, code: ErrorCode | None = None, delay_s: int | None = None) -> None:
        super().__init__(message, code=code)
        self.delay_s = delay_s


class StorageError(RetryableError):
    code = ErrorCode.STORAGE_ERROR


class NotifyError(RetryableError):
    code = ErrorCode.NOTIFY_ERROR


class EngineError(RetryableError):
    """Engine failure that may pass (CUDA OOM, a device hiccup)."""

    code = ErrorCode.ENGINE_ERROR


class JobTimeout(RetryableError):
    code = ErrorCode.TIMEOUT


class LeaseLost(WorkerError):
    """Another worker took the job over (or our visibility could not be extended): stop, write nothing."""


class JobInProgressElsewhere(WorkerError):
    """A live claim by another worker exists: leave the message for later."""

    def __init__(self, message: str, *, retry_in_s: int) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s
