"""OpenAI-compatible routes: `POST /v1/audio/speech` (enqueue, wait for the outcome, answer the audio), the model
names and the voice ids."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from consumer.api.deps import Api, Caller
from consumer.api.errors import declared
from consumer.api.gateway import Submitted
from consumer.api.speech import MODEL_NAMES, SpeechRequest
from consumer.api.speech_stream import SSE_TYPE, failure_error, stream_speech, timeout_error
from consumer.api.state import ApiState
from consumer.api.submission import submit_job
from consumer.audio.encoding import CONTENT_TYPES
from consumer.core.errors import ApiError
from consumer.core.logs import get_logger
from contracts.events import Event, SynthesisCompleted
from contracts.requests import AudioFormat

log = get_logger(__name__)
router = APIRouter()
AUDIO_TYPES = {media: {"schema": {"type": "string", "format": "binary"}} for media in CONTENT_TYPES.values()}
AUDIO_TYPES[SSE_TYPE] = {"schema": {"type": "string", "description": "speech.audio.delta/done events"}}


@router.post(
    "/v1/audio/speech",
    response_class=Response,
    responses={
        200: {
            "description": "The audio (streamed as it is made unless the body says stream: false).",
            "content": AUDIO_TYPES,
        },
        **declared(400, 409, 500, 504),
    },
)
async def speech(
    request: Request,
    body: SpeechRequest,
    key: Caller,
    api: Api,
    idempotency_key: Annotated[str | None, Header()] = None,
    cancel_on_disconnect: Annotated[bool, Header(alias="x-f5-cancel-on-disconnect")] = False,
) -> Response:
    started = time.monotonic()
    problem = body.problem()
    if problem:
        raise ApiError(400, problem[1], param=problem[0], code="unsupported")
    await api.voices.require(body.voice_id, status=400, cached=True)
    streamed = body.streamed(api.settings.api_stream)
    submitted = await run_in_threadpool(submit_job, api.gateway, key, body.synthesis_body(streamed), idempotency_key)
    media = CONTENT_TYPES[AudioFormat(body.response_format)]
    if streamed or body.stream_format == "sse":
        return await stream_speech(
            request,
            api,
            key,
            submitted,
            media_type=media,
            sse=body.stream_format == "sse",
            input_chars=len(body.input),
            cancel_on_disconnect=cancel_on_disconnect,
        )
    wait_s = api.settings.api_speech_wait_s
    if cancel_on_disconnect:
        event = await _wait_while_connected(request, api, key, submitted)
    else:  # the job goes on whatever the client does
        event = await api.waiter.wait(submitted.job_id, wait_s)
    headers = {"x-should-retry": "false", "x-f5-job-id": submitted.client_id}
    if event is None:
        raise timeout_error(submitted.client_id, wait_s, headers)
    if not isinstance(event, SynthesisCompleted):
        raise failure_error(event, headers)
    audio = await run_in_threadpool(api.gateway.audio, event)
    api.metrics.speech_seconds.observe(time.monotonic() - started)
    return Response(audio, media_type=media, headers={"x-f5-job-id": submitted.client_id})


@router.get("/v1/models", responses=declared())
async def models(_key: Caller) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": 0, "owned_by": "f5-worker"} for name in MODEL_NAMES],
    }


@router.get("/v1/audio/voices", responses=declared())
async def audio_voices(_key: Caller, api: Api) -> dict[str, Any]:
    listed = await run_in_threadpool(api.voices.library.list)
    return {"voices": [v["voice_id"] for v in listed]}


async def _wait_while_connected(request: Request, api: ApiState, key: str, submitted: Submitted) -> Event | None:
    """Wait in one-second steps; a client gone away cancels its job (`x-f5-cancel-on-disconnect: true`)."""
    deadline = time.monotonic() + api.settings.api_speech_wait_s
    while (left := deadline - time.monotonic()) > 0:
        event = await api.waiter.wait(submitted.job_id, min(1.0, left))
        if event is not None:
            return event
        if await request.is_disconnected():
            await run_in_threadpool(api.gateway.cancel, key, submitted.client_id)
            log.info("api_client_disconnected", job_id=submitted.job_id, consequence="job cancelled")
            return None
    return None
