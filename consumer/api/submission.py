"""Submitting a job for a key, with the gateway's refusals as API errors (shared by speech and jobs routes)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from consumer.api.gateway import Gateway, Submitted
from consumer.core.errors import ApiError, JobConflict
from contracts.requests import describe_validation_error


def submit_job(gateway: Gateway, key: str, body: dict[str, Any], idempotency_key: str | None) -> Submitted:
    """Blocking (AWS calls): run it in the thread pool. 400 for an invalid body, 409 for an idempotency key reused
    with another body."""
    try:
        return gateway.submit(key, body, idempotency_key)
    except ValidationError as exc:
        raise ApiError(400, describe_validation_error(exc), code="invalid_request") from exc
    except ValueError as exc:
        raise ApiError(400, str(exc), code="invalid_request", param="job_id") from exc
    except JobConflict as exc:
        raise ApiError(409, str(exc), code="idempotency_conflict") from exc
