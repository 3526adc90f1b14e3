"""The FastAPI application: routes, authentication, limits and error shapes (see docs/api.md).

No `from __future__ import annotations` here: FastAPI reads the routes' annotations, some of which
(`Caller`) are local to `create_app`."""

import contextlib
import re
import time
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from consumer.api.auth import ApiKeys, RateLimiter
from consumer.api.errors import api_error, declared, error_body, http_error, validation_error
from consumer.api.gateway import Gateway
from consumer.api.speech import MODEL_NAMES, SpeechRequest
from consumer.api.waiter import Waiter
from consumer.audio.encoding import CONTENT_TYPES
from consumer.aws.clients import AwsClients, make_clients, make_cloudwatch
from consumer.core.errors import ApiError, BadReferenceAudio, InvalidRequest, JobConflict, UnknownJob, VoiceExists
from consumer.core.logs import get_logger
from consumer.core.settings import Settings
from consumer.producer.overview import overview
from consumer.producer.voice_library import VoiceLibrary
from consumer.storage.jobs import CancelResult
from consumer.storage.workers import WorkerRegistry
from contracts.events import SynthesisCompleted
from contracts.limits import VOICE_ID_PATTERN
from contracts.requests import AudioFormat, describe_validation_error

log = get_logger(__name__)
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2b5797"/>'
    b'<path d="M4 10V6h2l3-3v10l-3-3z M11 5.5a3.5 3.5 0 0 1 0 5" stroke="#fff" fill="#fff" stroke-width="1"/></svg>'
)
CLIENT_ERRORS = {"invalid_json", "invalid_request", "unknown_voice", "bad_reference_audio", "text_not_representable"}


def create_app(settings: Settings, clients: AwsClients | None = None) -> FastAPI:
    clients = clients or make_clients(settings, max_pool_connections=64)
    keys = ApiKeys.parse(settings.api_key_hashes)
    gateway = Gateway(settings, clients)
    limiter = RateLimiter(settings.api_rate_per_minute)
    voices = VoiceLibrary(clients.s3, settings.bucket, settings.voices_prefix)
    cloudwatch = make_cloudwatch(settings)
    registry = CollectorRegistry()
    requests_total = Counter("f5_api_requests", "API requests", ["route", "status"], registry=registry)
    speech_seconds = Histogram("f5_api_speech_seconds", "Speech request latency", registry=registry)
    aws_requests = Counter(
        "f5_api_aws_requests", "AWS API calls made by this process", ["operation"], registry=registry
    )

    def count_aws_call(model: Any, **_: Any) -> None:
        aws_requests.labels(model.name).inc()

    for client in (clients.sqs, clients.s3):
        client.meta.events.register("provide-client-params", count_aws_call)
    # after the counter: the waiter's thread starts its first receive at once
    waiter = Waiter(
        gateway.client.jobs, gateway.client.index, sqs=clients.sqs, events_queue_url=settings.api_events_queue_url
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        waiter.close()

    app = FastAPI(
        title="f5-worker API",
        summary="F5-TTS behind a durable queue: OpenAI-compatible speech, jobs and voices.",
        version="1",
        lifespan=lifespan,
    )
    app.state.gateway, app.state.waiter, app.state.keys = gateway, waiter, keys
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.api_cors_origins), allow_methods=["*"], allow_headers=["*"]
        )

    app.add_middleware(LimitsAndMetrics, settings=settings, requests_total=requests_total)

    def caller(authorization: Annotated[str | None, Header()] = None) -> str:
        key = keys.identify(authorization)
        if key is None:
            raise ApiError(401, "missing or wrong API key: send Authorization: Bearer <key>", code="invalid_api_key")
        wait_s = limiter.take(key)
        if wait_s > 0:
            raise ApiError(
                429, "rate limit reached for this key", code="rate_limited", headers={"Retry-After": f"{wait_s:.0f}"}
            )
        return key

    Caller = Annotated[str, Depends(caller)]

    # --- OpenAI-compatible ----------------------------------------------------------------------------------
    audio_types = {media: {"schema": {"type": "string", "format": "binary"}} for media in CONTENT_TYPES.values()}

    @app.post(
        "/v1/audio/speech",
        response_class=Response,
        responses={200: {"description": "The audio.", "content": audio_types}, **declared(400, 409, 500, 504)},
    )
    async def speech(
        request: Request,
        body: SpeechRequest,
        key: Caller,
        idempotency_key: Annotated[str | None, Header()] = None,
        cancel_on_disconnect: Annotated[bool, Header(alias="x-f5-cancel-on-disconnect")] = False,
    ) -> Response:
        started = time.monotonic()
        problem = body.problem()
        if problem:
            raise ApiError(400, problem[1], param=problem[0], code="unsupported")
        await _require_voice(body.voice_id, status=400, cached=True)
        submitted = await run_in_threadpool(_submit, key, body.synthesis_body(), idempotency_key)
        if cancel_on_disconnect:
            event = await _wait_while_connected(request, key, submitted)
        else:  # the job goes on whatever the client does
            event = await waiter.wait(submitted.job_id, settings.api_speech_wait_s)
        if event is None:
            raise ApiError(
                504,
                f"job {submitted.client_id} did not finish within {settings.api_speech_wait_s:.0f} s; it goes on: "
                f"GET /v1/jobs/{submitted.client_id}",
                code="timeout",
                headers={"x-should-retry": "false", "x-f5-job-id": submitted.client_id},
            )
        if not isinstance(event, SynthesisCompleted):
            status = 400 if event.error_code.value in CLIENT_ERRORS else 409 if event.error_code == "cancelled" else 500
            headers = {"x-should-retry": "false", "x-f5-job-id": submitted.client_id}
            raise ApiError(status, event.error_message, code=event.error_code.value, headers=headers)
        audio = await run_in_threadpool(gateway.audio, event)
        speech_seconds.observe(time.monotonic() - started)
        media = CONTENT_TYPES[AudioFormat(body.response_format)]
        return Response(audio, media_type=media, headers={"x-f5-job-id": submitted.client_id})

    @app.get("/v1/models", responses=declared())
    async def models(_key: Caller) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "f5-worker"} for name in MODEL_NAMES],
        }

    @app.get("/v1/audio/voices", responses=declared())
    async def audio_voices(_key: Caller) -> dict[str, Any]:
        listed = await run_in_threadpool(voices.list)
        return {"voices": [v["voice_id"] for v in listed]}

    # --- jobs -------------------------------------------------------------------------------------------------
    @app.post(
        "/v1/jobs",
        status_code=202,
        responses={200: {"description": "An idempotent repeat: the job queued before."}, **declared(400, 409)},
    )
    async def create_job(
        body: dict[str, Any], key: Caller, idempotency_key: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        submitted = await run_in_threadpool(_submit, key, body, idempotency_key)
        location = f"/v1/jobs/{submitted.client_id}"
        payload = {"id": submitted.client_id, "object": "job", "status": "queued", "url": location}
        return JSONResponse(payload, 202 if submitted.created else 200, headers={"Location": location})

    @app.get("/v1/jobs/{job_id}", responses=declared(404))
    async def get_job(job_id: str, key: Caller) -> dict[str, Any]:
        try:
            return await run_in_threadpool(gateway.describe, key, job_id)
        except UnknownJob as exc:
            raise ApiError(404, f"no job {job_id!r}", code="job_not_found", param="job_id") from exc

    @app.get("/v1/jobs", responses=declared(400))
    async def list_jobs(
        key: Caller,
        state: Annotated[str | None, Query(pattern="^(INPROGRESS|RELEASED|COMPLETED|FAILED)$")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        rows = await run_in_threadpool(gateway.recent, key, state, limit)
        return {"object": "list", "data": rows}

    @app.delete("/v1/jobs/{job_id}", responses=declared(404, 409))
    async def cancel_job(job_id: str, key: Caller) -> dict[str, Any]:
        try:
            result = await run_in_threadpool(gateway.cancel, key, job_id)
        except UnknownJob as exc:
            raise ApiError(404, f"no job {job_id!r}", code="job_not_found", param="job_id") from exc
        if result == CancelResult.FINISHED:
            raise ApiError(409, f"job {job_id!r} already finished", code="already_finished")
        return {"id": job_id, "object": "job", "cancel": result.value}

    # --- voices -----------------------------------------------------------------------------------------------
    @app.post("/v1/voices", status_code=201, responses=declared(400, 409))
    async def add_voice(
        _key: Caller,
        voice_id: Annotated[str, Form(pattern=VOICE_ID_PATTERN)],
        transcript: Annotated[str, Form(min_length=1, max_length=1000)],
        file: Annotated[UploadFile, File()],
        force: Annotated[bool, Form()] = False,
    ) -> dict[str, Any]:
        clip = await file.read(settings.api_max_upload_bytes + 1)
        if len(clip) > settings.api_max_upload_bytes:
            raise ApiError(413, f"clip over {settings.api_max_upload_bytes:,} bytes", code="too_large", param="file")
        try:
            return await run_in_threadpool(voices.add, voice_id, clip, transcript, force=force)
        except VoiceExists as exc:
            raise ApiError(409, f"{exc}; send force=true to replace it", code="voice_exists", param="voice_id") from exc
        except (BadReferenceAudio, InvalidRequest) as exc:
            raise ApiError(400, str(exc), code=exc.code.value, param="file") from exc

    @app.get("/v1/voices", responses=declared())
    async def list_voices(_key: Caller) -> dict[str, Any]:
        return {"object": "list", "data": await run_in_threadpool(voices.list)}

    @app.get("/v1/voices/{voice_id}", responses=declared(404))
    async def get_voice(voice_id: str, _key: Caller) -> dict[str, Any]:
        return await _require_voice(voice_id)

    @app.delete("/v1/voices/{voice_id}", responses=declared(404))
    async def delete_voice(voice_id: str, _key: Caller) -> dict[str, Any]:
        await _require_voice(voice_id)
        await run_in_threadpool(voices.remove, voice_id)
        known_voices.pop(voice_id, None)
        return {"id": voice_id, "deleted": True}

    # --- operations -------------------------------------------------------------------------------------------
    @app.get("/v1/status", responses=declared())
    async def status(_key: Caller) -> dict[str, Any]:
        workers = WorkerRegistry(clients.s3, settings.bucket, settings.workers_prefix)
        return await run_in_threadpool(
            overview, clients.sqs, cloudwatch, settings.queue_url, gateway.client.index, workers
        )

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            await run_in_threadpool(
                clients.sqs.get_queue_attributes, QueueUrl=settings.queue_url, AttributeNames=["QueueArn"]
            )
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return JSONResponse({"status": "unready", "reason": type(exc).__name__}, 503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    @app.get("/", include_in_schema=False)
    async def console() -> HTMLResponse:
        return HTMLResponse(files("consumer.api").joinpath("console.html").read_text(encoding="utf-8"))

    # --- helpers ----------------------------------------------------------------------------------------------
    async def _wait_while_connected(request: Request, key: str, submitted: Any) -> Any:
        """Wait in one-second steps; a client gone away cancels its job (`x-f5-cancel-on-disconnect: true`)."""
        deadline = time.monotonic() + settings.api_speech_wait_s
        while (left := deadline - time.monotonic()) > 0:
            event = await waiter.wait(submitted.job_id, min(1.0, left))
            if event is not None:
                return event
            if await request.is_disconnected():
                await run_in_threadpool(gateway.cancel, key, submitted.client_id)
                log.info("api_client_disconnected", job_id=submitted.job_id, consequence="job cancelled")
                return None
        return None

    def _submit(key: str, body: dict[str, Any], idempotency_key: str | None):
        try:
            return gateway.submit(key, body, idempotency_key)
        except ValidationError as exc:
            raise ApiError(400, describe_validation_error(exc), code="invalid_request") from exc
        except ValueError as exc:
            raise ApiError(400, str(exc), code="invalid_request", param="job_id") from exc
        except JobConflict as exc:
            raise ApiError(409, str(exc), code="idempotency_conflict") from exc

    known_voices: dict[str, tuple[float, dict[str, Any]]] = {}  # voice id → (checked at, manifest)

    async def _require_voice(voice_id: str, status: int = 404, *, cached: bool = False) -> dict[str, Any]:
        """The voice's manifest; `status` (404 for a voice URL, 400 for a request naming it) when unknown. `cached`:
        a voice seen in the last `voice_revalidate_s` is not looked up again (speech requests)."""
        hit = known_voices.get(voice_id)
        if cached and hit is not None and time.monotonic() - hit[0] < settings.voice_revalidate_s:
            return hit[1]
        manifest = await run_in_threadpool(voices.show, voice_id) if re.match(VOICE_ID_PATTERN, voice_id) else None
        if manifest is None:
            message = f"unknown voice {voice_id!r}: add it first (POST /v1/voices)"
            raise ApiError(status, message, code="unknown_voice", param="voice")
        known_voices[voice_id] = (time.monotonic(), manifest)
        return manifest

    app.openapi = lambda: _openapi_without_422(app)  # type: ignore[method-assign]
    return app


def _openapi_without_422(app: FastAPI) -> dict[str, Any]:
    """FastAPI documents 422 for every route with parameters; this API answers validation errors with 400 (as
    OpenAI does), declared on each route, so 422 and its schemas leave the document."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


class LimitsAndMetrics:
    """Refuses bodies over the limits before reading them (413) and counts requests by route and status. Plain
    ASGI, not `BaseHTTPMiddleware`, which would hide a client's disconnect from the routes."""

    def __init__(self, app: Any, settings: Settings, requests_total: Counter) -> None:
        self.app, self.settings, self.requests_total = app, settings, requests_total

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length", b"")
        upload = scope["path"] == "/v1/voices"
        limit = self.settings.api_max_upload_bytes + 65_536 if upload else self.settings.api_max_body_bytes
        if length.isdigit() and int(length) > limit:
            body = error_body(413, f"request body over {limit:,} bytes", "too_large")
            await JSONResponse(body, 413)(scope, receive, send)
            self.requests_total.labels("refused", "413").inc()
            return
        status = {"code": 500}

        async def remember_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, remember_status)
        route = getattr(scope.get("route"), "path", "unmatched")
        self.requests_total.labels(route, str(status["code"])).inc()
