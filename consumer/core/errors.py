"""Every exception class of f5-worker, and what each one makes the worker do (docs/errors.md is generated from
this module: `python -m consumer.core.errors`).

The class decides the queue action of a job:

- `PermanentError` → failure event, message deleted. Retrying cannot help.
- `RetryableError` → message kept; visibility set to a backoff; after maxReceiveCount the queue's redrive
  policy moves it to the DLQ (and the last attempt publishes a failure event).
- `LeaseLost` → this attempt no longer owns the job; it stops without writing anything.
- `JobInProgressElsewhere` → another attempt holds a live claim; the message is hidden until it expires.

The others are signals between modules (`JobAlreadyCompleted`, `JobAlreadyFailed`, `SynthesisAborted`), webhook
outcomes, and the errors of the model loader, the image's weight preparation and the producer client.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from contracts.codes import ErrorCode

if TYPE_CHECKING:
    from contracts.events import SynthesisCompleted, SynthesisFailed


class WorkerError(Exception):
    """Base of every error the job lifecycle classifies into a queue action."""

    code: ErrorCode = ErrorCode.INTERNAL
    # For docs/errors.md: when it happens, what the queue and the subscribers see, how it is logged.
    cause: ClassVar[str] = ""
    queue_action: ClassVar[str] = ""
    event: ClassVar[str] = ""
    log_level: ClassVar[str] = "info"
    other_codes: ClassVar[str] = ""  # for docs/errors.md: codes it carries besides `code`, and when

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
        "body not JSON; schema violation, text too long, bad webhook target, clip without transcript and no ASR model"
    )
    other_codes = "`invalid_json` when the body is not JSON"


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
    """A bucket or key outside what this worker may read or write, or an output key holding a foreign object."""

    code = ErrorCode.FORBIDDEN_LOCATION
    cause = "bucket outside the allowlist; output key holding an object f5-worker did not write"


class JobCancelled(PermanentError):
    """Someone asked for the job to be cancelled (`f5-worker jobs cancel`): a queued job fails when received, a
    running one at its next sampling step."""

    code = ErrorCode.CANCELLED
    cause = "cancel requested (`jobs cancel`): before the job started, or while it was synthesizing"


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
    """The SNS publish still failed after in-process retries (webhooks are delivered apart from the job)."""

    code = ErrorCode.NOTIFY_ERROR
    cause = "SNS publish still failing after in-process retries, after the outcome was recorded"
    event = "the recorded one, replayed by the next delivery; never a failure (last receive: message finished)"


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
    queue_action = (
        "keep; hidden until that claim expires (waited out instead, message kept hidden, when the claim runs out"
        " within a heartbeat, and always on the last receive)"
    )
    event = "none"

    def __init__(self, message: str, *, retry_in_s: int) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


# --- signals between modules -------------------------------------------------------------------------------------
class JobAlreadyCompleted(Exception):
    """A claim found the job's record COMPLETED (final): its event is replayed instead of running the job."""

    def __init__(self, event: SynthesisCompleted, webhook_url: str | None = None, delivered: bool = False) -> None:
        super().__init__(f"job {event.job_id} already completed")
        self.event = event
        self.webhook_url = webhook_url
        self.delivered = delivered  # the webhook already accepted the event


class JobAlreadyFailed(Exception):
    """A duplicate delivery of the message whose job failed: the recorded failure event is replayed."""

    def __init__(self, event: SynthesisFailed, webhook_url: str | None = None, delivered: bool = False) -> None:
        super().__init__(f"job {event.job_id} already failed ({event.error_code.value})")
        self.event = event
        self.webhook_url = webhook_url
        self.delivered = delivered


class SynthesisAborted(Exception):
    """Raised inside the engine when the job's abort check fires (shutdown, hard timeout, lost lease)."""


# --- webhooks ----------------------------------------------------------------------------------------------------
class WebhookRefused(Exception):
    """The target is not allowed (private address, bad scheme): retrying cannot help."""


class WebhookFailed(Exception):
    """The target did not accept the delivery (connection error or non-2xx): retrying may help."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status it answered, if it answered


class SettingsConflict(ValueError):
    """Settings that are valid one by one but not together: their values, the rule, the fix (raised inside the
    settings' validation; `consumer.core.settings.load_settings` turns it into a `ConfigurationError`)."""

    def __init__(self, values: dict[str, object], rule: str, fix: str) -> None:
        super().__init__(rule)
        self.values, self.rule, self.fix = values, rule, fix


# --- a user's mistake: one line with the cause, one with the fix, exit code 2 -------------------------------------
class ConfigurationError(Exception):
    """A setting, a credential or an endpoint that cannot work as configured. Commands print the message and its
    fix and exit with status 2, without a traceback."""

    exit_code: ClassVar[int] = 2

    def __init__(self, message: str, fix: str) -> None:
        super().__init__(message)
        self.fix = fix


# --- models, image build, producers ------------------------------------------------------------------------------
class VoiceExists(Exception):
    """`voices add` without `--force` for a voice id that is taken."""


class ModelSpecError(ValueError):
    """A model directory, checkpoint, vocabulary or architecture that cannot be used."""


class PrepareError(Exception):
    """Image build: preparing the weights failed, with its exit status (1: source/download, 2: verification)."""

    def __init__(self, message: str, status: int = 1, fix: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.fix = fix  # the options that fix it (--model-sha256), named as build arguments in an image build


class JobTimeoutError(TimeoutError):
    """The producer client's wait for a job's outcome ran out."""


class StreamFailed(Exception):
    """A streamed job ended without its audio: it failed (`event` says why), or its final object is gone. The
    blocks read so far are not the whole audio."""

    def __init__(self, message: str, event: SynthesisFailed | None = None) -> None:
        super().__init__(message)
        self.event = event


class StreamCut(Exception):
    """A streamed HTTP answer that cannot finish (the job failed after its first bytes): the connection is closed
    without the chunked body's end, so the client knows the audio is incomplete."""


# --- the fleet -------------------------------------------------------------------------------------------------------
class ProviderError(RuntimeError):
    """A provider refused or failed to start or stop workers (capacity, credentials, its API). `config` errors
    are the user's to fix (`scale` exits 2 and leaves the fleet as it is); the others are retried next step."""

    def __init__(self, message: str, *, config: bool = False) -> None:
        super().__init__(message)
        self.config = config


# --- the HTTP API ----------------------------------------------------------------------------------------------------
class ApiError(Exception):
    """An HTTP answer in OpenAI's error shape (`consumer/api/errors.py` renders it)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}


class KeyConfigError(ValueError):
    """A configured API key hash, or a new key's name, that cannot be used."""


class JobConflict(Exception):
    """An idempotency key used before with another request body."""


class UnknownJob(LookupError):
    """No such job for this API key."""


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
        code += f"; {cls.other_codes}" if cls.other_codes else ""
        rows.append(f"| {cls.cause} (`{cls.__name__}`) | {code} | {cls.queue_action} | {cls.event} | {cls.log_level} |")
    rows += [
        "| unexpected exception (a bug) | `internal` | keep; visibility = backoff | none until the last attempt"
        " | error + traceback |",
        "| any retryable error on the generation's receive `maxReceiveCount` (counted from the delivery that opened"
        " the generation) | `retries_exhausted` | visibility 0 → the queue's redrive moves it to the DLQ on the next"
        " receive | failed, `retryable=false` | error |",
        "| a dead letter whose job has no outcome (its worker died or lost its lease on the last receive), found by"
        " the DLQ sweep every `dead_letter_check_s` | `retries_exhausted` | stays in the DLQ | failed,"
        " `retryable=false` | error |",
        "| the lease ran out during synthesis (process paused, heartbeat failing) | — | none (another worker"
        " finishes it) | none | warning |",
        "| shutdown (SIGTERM) before the job finished | — | visibility 0, or hidden until this worker's own open"
        " long poll has ended (it must not receive it again) | none | info |",
        "",
        "`lease_lost` is never published: the attempt that lost its lease writes nothing; the new owner finishes",
        "the job. Event consumers treat an `error_code` they do not know as a generic failure.",
        "",
        "Backoff: `min(retry_max_delay_s, retry_base_delay_s · 2^(attempt-1))`, jittered in [½, 1] of that, from",
        "the message's `ApproximateReceiveCount` (SQS keeps the count; re-sending would reset it and defeat redrive).",
        "",
        "Every outcome is recorded in the job record `jobs/{job_id}.json` before it is announced, and only the",
        "attempt that recorded it (or a replay of the record) publishes an event: `COMPLETED` is final (every later",
        "delivery, re-send or redrive replays its `completed` event); `FAILED` replays its event to duplicate",
        "deliveries of the message that failed, and a new message for the job (a re-send after fixing the cause, or",
        "a redrive) runs it again as its next `generation` (failure event ids carry the generation). A body without",
        "a usable `job_id` has no record: its event has job id `message-<MessageId>`.",
        "",
        "A webhook never fails a job: it is delivered after the outcome is recorded, apart from the job, and",
        "retried from the queue until it accepts or the record says `delivery_failed`.",
    ]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    (Path(__file__).resolve().parents[2] / "docs" / "errors.md").write_text(render_errors_doc())
