"""Error codes of failure events. Standard library only: the image's slim build stage imports it without pydantic.

Compatibility: codes are only ever added. An event consumer that meets a code it does not know treats it as a
generic failure; `contracts.parse_event` maps it to `ErrorCode.UNKNOWN`.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why a job failed. Permanent codes are never retried; retryable ones were retried until redrive."""

    INVALID_JSON = "invalid_json"
    INVALID_REQUEST = "invalid_request"
    UNKNOWN_VOICE = "unknown_voice"
    BAD_REFERENCE_AUDIO = "bad_reference_audio"
    TEXT_NOT_REPRESENTABLE = "text_not_representable"
    FORBIDDEN_LOCATION = "forbidden_location"
    CANCELLED = "cancelled"
    ENGINE_ERROR = "engine_error"
    STORAGE_ERROR = "storage_error"
    NOTIFY_ERROR = "notify_error"
    TIMEOUT = "timeout"
    RETRIES_EXHAUSTED = "retries_exhausted"
    INTERNAL = "internal"
    # Never published (the attempt that lost its lease writes nothing); it names the cause in logs and metrics.
    LEASE_LOST = "lease_lost"
    # Only produced by parsing: a code this version of the contracts does not know yet.
    UNKNOWN = "unknown"

    @classmethod
    def _missing_(cls, value: object) -> ErrorCode:
        return cls.UNKNOWN
