"""Jobs on behalf of the caller's key: submit a full `SynthesisRequest`, read one, list recent ones, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from consumer.api.deps import Api, Caller
from consumer.api.errors import declared
from consumer.api.submission import submit_job
from consumer.core.errors import ApiError, UnknownJob
from consumer.storage.jobs import CancelResult

router = APIRouter()


@router.post(
    "/v1/jobs",
    status_code=202,
    responses={200: {"description": "An idempotent repeat: the job queued before."}, **declared(400, 409)},
)
async def create_job(
    body: dict[str, Any], key: Caller, api: Api, idempotency_key: Annotated[str | None, Header()] = None
) -> JSONResponse:
    submitted = await run_in_threadpool(submit_job, api.gateway, key, body, idempotency_key)
    location = f"/v1/jobs/{submitted.client_id}"
    payload = {"id": submitted.client_id, "object": "job", "status": "queued", "url": location}
    return JSONResponse(payload, 202 if submitted.created else 200, headers={"Location": location})


@router.get("/v1/jobs/{job_id}", responses=declared(404))
async def get_job(job_id: str, key: Caller, api: Api) -> dict[str, Any]:
    try:
        return await run_in_threadpool(api.gateway.describe, key, job_id)
    except UnknownJob as exc:
        raise _unknown(job_id) from exc


@router.get("/v1/jobs", responses=declared(400))
async def list_jobs(
    key: Caller,
    api: Api,
    state: Annotated[str | None, Query(pattern="^(INPROGRESS|RELEASED|COMPLETED|FAILED)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    rows = await run_in_threadpool(api.gateway.recent, key, state, limit)
    return {"object": "list", "data": rows}


@router.delete("/v1/jobs/{job_id}", responses=declared(404, 409))
async def cancel_job(job_id: str, key: Caller, api: Api) -> dict[str, Any]:
    try:
        result = await run_in_threadpool(api.gateway.cancel, key, job_id)
    except UnknownJob as exc:
        raise _unknown(job_id) from exc
    if result == CancelResult.FINISHED:
        raise ApiError(409, f"job {job_id!r} already finished", code="already_finished")
    return {"id": job_id, "object": "job", "cancel": result.value}


def _unknown(job_id: str) -> ApiError:
    return ApiError(404, f"no job {job_id!r}", code="job_not_found", param="job_id")
