"""Errors in OpenAI's shape, everywhere: `{"error": {"message", "type", "param", "code"}}` with the HTTP status
SDKs map to typed exceptions (400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, 409 Conflict,
413, 429 RateLimitError, 504). `code` carries f5-worker's error codes where one applies."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from consumer.core.errors import ApiError

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
    504: "timeout_error",
}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error the API answers, in OpenAI's shape."""

    error: ErrorDetail


MEANINGS = {
    400: "The request is invalid (body, query, header or a value the worker refuses); `param` names the field.",
    401: "Missing or wrong API key.",
    404: "No such job or voice.",
    409: "Conflict: idempotency key reused with another body, voice exists, job already finished or cancelled.",
    413: "Request body over the limit (`F5_WORKER_API_MAX_BODY_BYTES`, uploads `API_MAX_UPLOAD_BYTES`).",
    429: "Rate limit of this key reached; `Retry-After` says when to try again.",
    500: "The job failed on the worker's side (its error code is in `code`).",
    504: "The job did not finish within the wait (`API_SPEECH_WAIT_S`); it goes on: `x-f5-job-id` names it.",
}
EVERY_ROUTE = (401, 413, 429)  # authentication, the body limits and the rate limit apply to every route


def declared(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the error statuses it can answer, besides those of every route."""
    return {
        status: {"model": ErrorResponse, "description": MEANINGS[status]}
        for status in sorted({*statuses, *EVERY_ROUTE})
    }


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": TYPES.get(status, "invalid_request_error"), "param": param, "code": code}
    }


async def api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.status, exc.message, exc.code, exc.param), exc.status, headers=exc.headers)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    first = problems[0] if problems else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}" for e in problems[:5]
    )
    return JSONResponse(error_body(400, message or "invalid request", "invalid_request", where or None), 400)


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    return JSONResponse(error_body(status, str(exc.detail)), status, headers=getattr(exc, "headers", None))
