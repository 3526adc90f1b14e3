"""Every exception class of f5-worker, and what each one makes the worker do (docs/errors.md is generated from
this module: `python -m consumer.core.errors`).

The class decides the queue action of a job:

- `PermanentError` → failure event, message deleted. Retrying cannot help.
- `RetryableError` → message kept; visibility set to a backoff; after maxReceiveCount the queue's redrive
  policy moves it to the DLQ (and the last attempt publishes a failure event).
- `LeaseLost` → this attempt no longer owns the job; it stops without writing anything.
- `JobInProgressElsewhere` → another attempt holds a live claim; the message is hidden until it expires.

The others are signals between modules (`JobAlreadyCompleted`, `SynthesisAborted`), webhook outcomes, and the
errors of the model loader, the image's weight preparation and the producer client.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from contracts.codes import ErrorCode

if TYPE_CHECKING:
    from contracts.events import SynthesisCompleted


class WorkerError(Exception):
    """Base of every error the job lifecycle classifies into a queue action."""

    code: ErrorCode = ErrorCode.INTERNAL
    # For docs/errors.md: when it happens, what the queue and the subscribers see, how it is logged.
    cause: ClassVar[str] = ""
    queue_action: ClassVar[str] = ""
    event: ClassVar[str] = ""
    log_level: ClassVar[str] = "info"

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


# --- permanent: failure event, delete ---------------------------------------------------------------------------
class PermanentError(WorkerError):
    """Bad input or an impossible job: no retry will succeed."""

    queue_action = "delete"
    event = "`synthesis.failed.v1`, `retryable=false`"


class InvalidRequest(PermanentError):
    """The body is not JSON (code `invalid_json`, job id `message-<MessageId>`), breaks the schema or a limit,
    names a refused webhook target, or sends a clip without transcript to a worker without an ASR model."""

    code = ErrorCode.INVALID_REQUEST
    cause = (
        "body not JSON (`invalid_json`); schema violation, text too long, bad webhook target,"
        " clip without transcript and no ASR model"
    )


class UnknownVoice(PermanentError):
    """The voice id or the reference object does not exist."""

    code = ErrorCode.UNKNOWN_VOICE
    cause = "voice id / reference object missing"


class BadReferenceAudio(PermanentError):
    """The reference clip is not audio, silent, shorter than 1 s or longer than 12 s, or has no speech."""

    code = ErrorCode.BAD_REFERENCE_AUDIO
    cause = "reference not audio, silent, < 1 s or > 12 s, no speech recognised in it"


class TextNotRepresentable(PermanentError):
    """The text holds characters the model's vocabulary cannot express."""

    code = ErrorCode.TEXT_NOT_REPRESENTABLE
    cause = "text the vocabulary cannot represent"


class ForbiddenLocation(PermanentError):
    """A bucket or key outside what this worker may read or write."""

    code = ErrorCode.FORBIDDEN_LOCATION
    cause = "bucket outside the allowlist"


# --- retryable: message kept, visible again after a backoff -----------------------------------------------------
class RetryableError(WorkerError):
    """A transient failure: the message is retried after `delay_s` (or the backoff policy's delay)."""

    queue_action = "keep; visibility = backoff"
    event = "none until the last attempt"

    def __init__(self, message: str, *, code: ErrorCode | None = None, delay_s: int | None = None) -> None:
        super().__init__(message, code=code)
        self.delay_s = delay_s


class StorageError(RetryableError):
    """An S3 call failed after in-process retries (botocore errors are wrapped into it, with their cause)."""

    code = ErrorCode.STORAGE_ERROR
    cause = "S3 error (any botocore error)"


class NotifyError(RetryableError):
    """The SNS publish or the webhook still failed after in-process retries."""

    code = ErrorCode.NOTIFY_ERROR
    cause = "SNS/webhook still failing after in-process retries"


class EngineError(RetryableError):
    """An engine failure that may pass (CUDA OOM, a device hiccup)."""

    code = ErrorCode.ENGINE_ERROR
    cause = "engine fault, e.g. CUDA OOM"


class JobTimeout(RetryableError):
    """The job ran past `job_timeout_s`."""

    code = ErrorCode.TIMEOUT
    cause = "job ran past `job_timeout_s`"


# --- neither: the job is someone else's --------------------------------------------------------------------------
class LeaseLost(WorkerError):
    """Another attempt took the job over, or our visibility could not be extended: stop, write nothing."""

    code = ErrorCode.LEASE_LOST
    cause = "our visibility extension or claim renewal failed, or the record was taken over"
    queue_action = "none (the message is no longer ours)"
    event = "none"
    log_level = "warning"


class JobInProgressElsewhere(WorkerError):
    """A live claim by another attempt exists: leave the message for later."""

    cause = "another attempt holds a live claim"
    queue_action = "keep; hidden until that claim expires"
    event = "none"

    def __init__(self, message: str, *, retry_in_s: int) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


# --- signals between modules -------------------------------------------------------------------------------------
class JobAlreadyCompleted(Exception):
    """A claim found the job's record COMPLETED: its event is replayed instead of running the job."""

    def __init__(self, event: SynthesisCompleted) -> None:
        super().__init__(f"job {event.job_id} already completed")
        self.event = event


class SynthesisAborted(Exception):
    """Raised inside the engine when the job's abort check fires (shutdown, hard timeout, lost lease)."""


# --- webhooks ----------------------------------------------------------------------------------------------------
class WebhookRefused(Exception):
    """The target is not allowed (private address, bad scheme): retrying cannot help."""


class WebhookFailed(Exception):
    """The target did not accept the delivery (connection error or non-2xx): retrying may help."""


# --- models, image build, producers --------------------------------------------------------------------------------
class ModelSpecError(ValueError):
    """A model directory, checkpoint, vocabulary or architecture that cannot be used."""


class PrepareError(Exception):
    """Image build: preparing the weights failed, with its exit status (1: source/download, 2: verification)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class JobTimeoutError(TimeoutError):
    """The producer client's wait for a job's outcome ran out."""


# --- docs/errors.md -------------------------------------------------------------------------------------------------
def _lifecycle_errors() -> list[type[WorkerError]]:
    """Concrete classes the lifecycle maps to a queue action, in declaration order."""
    out: list[type[WorkerError]] = []
    pending = list(WorkerError.__subclasses__())
    while pending:
        cls = pending.pop(0)
        pending[:0] = cls.__subclasses__()
        if cls.cause:
            out.append(cls)
    return out


def render_errors_doc() -> str:
    """docs/errors.md, generated from the classes above (a test keeps it in sync)."""
    rows = [
        "# Errors: class → queue action → event → log level",
        "",
        "Every exit of a job (`consumer/worker/job.py`) maps to exactly one queue action, decided by the error",
        "class. Every exception class of f5-worker lives in `consumer/core/errors.py`; this page is generated",
        "from it (`python -m consumer.core.errors`).",
        "",
        "| error (class) | `error_code` | queue action | event | log |",
        "|---|---|---|---|---|",
    ]
    for cls in _lifecycle_errors():
        code = f"`{cls.code.value}`" if issubclass(cls, (PermanentError, RetryableError, LeaseLost)) else "—"
        rows.append(f"| {cls.cause} (`{cls.__name__}`) | {code} | {cls.queue_action} | {cls.event} | {cls.log_level} |")
    rows += [
        "| unexpected exception (a bug) | `internal` | keep; visibility = backoff | none until the last attempt"
        " | error + traceback |",
        "| any retryable error on receive `maxReceiveCount` | `retries_exhausted` | visibility 0 → the queue's"
        " redrive moves it to the DLQ on the next receive | failed, `retryable=false` | error |",
        "| shutdown (SIGTERM) before the job finished | — | visibility 0 (redelivered at once) | none | info |",
        "",
        "`lease_lost` is never published: the attempt that lost its lease writes nothing; the new owner finishes",
        "the job. Event consumers treat an `error_code` they do not know as a generic failure.",
        "",
        "Backoff: `min(retry_max_delay_s, retry_base_delay_s · 2^(attempt-1))`, jittered in [½, 1] of that, from",
        "the message's `ApproximateReceiveCount` (SQS keeps the count; re-sending would reset it and defeat redrive).",
        "",
        "Permanent failures are not recorded in S3: re-sending the same `job_id` after fixing the cause (e.g.",
        "uploading the voice) runs the job. A completed job is recorded in its job record `jobs/{job_id}.json`",
        "(status `COMPLETED`, with its event) and is never synthesized again: its event is replayed.",
    ]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    (Path(__file__).resolve().parents[2] / "docs" / "errors.md").write_text(render_errors_doc())
