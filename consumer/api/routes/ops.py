"""Operations: the queue and workers overview (`/v1/status`, keyed), liveness, readiness and Prometheus metrics
(keyless, outside the document)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from starlette.concurrency import run_in_threadpool

from consumer.api.deps import Api, Caller
from consumer.api.errors import declared
from consumer.producer.overview import overview
from consumer.storage.workers import WorkerRegistry

router = APIRouter()


@router.get("/v1/status", responses=declared())
async def status(_key: Caller, api: Api) -> dict[str, Any]:
    settings = api.settings
    workers = WorkerRegistry(api.clients.s3, settings.bucket, settings.workers_prefix)
    return await run_in_threadpool(overview, api.clients.sqs, api.cloudwatch, settings.queue_url, workers)


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(api: Api) -> JSONResponse:
    try:
        await run_in_threadpool(
            api.clients.sqs.get_queue_attributes, QueueUrl=api.settings.queue_url, AttributeNames=["QueueArn"]
        )
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return JSONResponse({"status": "unready", "reason": type(exc).__name__}, 503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
async def metrics(api: Api) -> Response:
    return Response(generate_latest(api.metrics.registry), media_type="text/plain; version=0.0.4")
