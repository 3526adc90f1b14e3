"""`POST /v1/audio/speech` answered while the job runs: the job's blocks (`consumer.storage.stream_reader`) as
chunked audio bytes, or as OpenAI's server-sent events (`stream_format: "sse"`).

The status is decided before the first byte: the answer starts once the first block is there, so a job that
fails before any audio (unknown voice, invalid text, a cancel) still gets its 4xx/5xx in OpenAI's error shape.
A failure after that cannot change the status: an SSE stream ends with an `error` event, a byte stream is cut
off without its last chunk (the client's HTTP library raises; a truncated file never passes for a whole one).
A client that hangs up with `x-f5-cancel-on-disconnect: true` cancels the job, as without streaming."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from consumer.api.gateway import Submitted
from consumer.api.state import ApiState
from consumer.core.errors import ApiError, JobTimeoutError, StorageError, StreamCut, StreamFailed
from consumer.core.logs import get_logger
from contracts.events import SynthesisFailed

log = get_logger(__name__)
SSE_TYPE = "text/event-stream"
DISCONNECT_CHECK_S = 0.5  # while waiting for the first block
# failures that are the request's fault: 400 rather than 500
CLIENT_ERRORS = {"invalid_json", "invalid_request", "unknown_voice", "bad_reference_audio", "text_not_representable"}


def failure_error(event: SynthesisFailed, headers: dict[str, str]) -> ApiError:
    """A failed job as the API's error answer: 400 for the request's fault, 409 for a cancel, else 500."""
    code = event.error_code.value
    status = 400 if code in CLIENT_ERRORS else 409 if code == "cancelled" else 500
    return ApiError(status, event.error_message, code=code, headers=headers)


def timeout_error(client_id: str, wait_s: float, headers: dict[str, str]) -> ApiError:
    """A job not done within the speech wait: 504 naming where it goes on."""
    message = f"job {client_id} did not finish within {wait_s:.0f} s; it goes on: GET /v1/jobs/{client_id}"
    return ApiError(504, message, code="timeout", headers=headers)


async def stream_speech(
    request: Request,
    api: ApiState,
    key: str,
    submitted: Submitted,
    *,
    media_type: str,
    sse: bool,
    input_chars: int,
    cancel_on_disconnect: bool,
) -> StreamingResponse:
    started = time.monotonic()
    headers = {"x-should-retry": "false", "x-f5-job-id": submitted.client_id}
    wait_s = api.settings.api_speech_wait_s
    stop = threading.Event()
    blocks = api.gateway.client.stream(submitted.job_id, wait_s, stop.is_set)
    first = await _first_block(request, api, key, submitted, blocks, stop, cancel_on_disconnect, headers)
    api.metrics.speech_first_byte_seconds.observe(time.monotonic() - started)

    async def body() -> AsyncIterator[bytes]:
        finished = failed = False
        try:
            if first:
                yield _delta(first) if sse else first
            async for data in iterate_in_threadpool(blocks):
                yield _delta(data) if sse else data
            finished = True
            if sse:
                yield _event({"type": "speech.audio.done", "usage": _usage(input_chars)})
            api.metrics.speech_seconds.observe(time.monotonic() - started)
        except (StreamFailed, JobTimeoutError, StorageError) as exc:
            failed = True
            log.warning("api_stream_cut", job_id=submitted.job_id, error=str(exc))
            if not sse:
                raise StreamCut(str(exc)) from exc
            yield _event({"type": "error", "error": _error(exc)})
        finally:
            stop.set()
            if not finished and not failed and cancel_on_disconnect:  # the client went away mid-stream
                log.info("api_client_disconnected", job_id=submitted.job_id, consequence="job cancelled")
                threading.Thread(target=api.gateway.cancel, args=(key, submitted.client_id), daemon=True).start()

    return StreamingResponse(body(), media_type=SSE_TYPE if sse else media_type, headers=headers)


async def _first_block(
    request: Request,
    api: ApiState,
    key: str,
    submitted: Submitted,
    blocks: Iterator[bytes],
    stop: threading.Event,
    cancel_on_disconnect: bool,
    headers: dict[str, str],
) -> bytes:
    """The first bytes (b"" when the audio is empty), or the job's failure as an `ApiError`."""
    task = asyncio.ensure_future(run_in_threadpool(next, blocks, b""))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_CHECK_S)
            if done:
                return task.result()
            if cancel_on_disconnect and await request.is_disconnected():
                stop.set()
                await run_in_threadpool(api.gateway.cancel, key, submitted.client_id)
                log.info("api_client_disconnected", job_id=submitted.job_id, consequence="job cancelled")
                raise ApiError(499, "client closed the request", code="client_closed", headers=headers)
    except StreamFailed as exc:
        if exc.event is not None:
            raise failure_error(exc.event, headers) from exc
        raise ApiError(500, str(exc), code="stream_failed", headers=headers) from exc
    except JobTimeoutError as exc:
        raise timeout_error(submitted.client_id, api.settings.api_speech_wait_s, headers) from exc
    finally:
        if not task.done():
            stop.set()


def _delta(data: bytes) -> bytes:
    return _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()})


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def _usage(input_chars: int) -> dict[str, int]:
    """OpenAI's usage shape; F5-TTS has no tokens: input counts characters, output nothing."""
    return {"input_tokens": input_chars, "output_tokens": 0, "total_tokens": input_chars}


def _error(exc: Exception) -> dict[str, Any]:
    event = exc.event if isinstance(exc, StreamFailed) else None
    code = event.error_code.value if event is not None else "timeout" if isinstance(exc, JobTimeoutError) else "error"
    return {"message": str(exc), "type": "server_error", "param": None, "code": code}
