"""The voice library over HTTP: add a clip (validated as `voices add` does), list, show, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from consumer.api.deps import Api, Caller
from consumer.api.errors import declared
from consumer.core.errors import ApiError, BadReferenceAudio, InvalidRequest, VoiceExists
from contracts.limits import VOICE_ID_PATTERN

router = APIRouter()


@router.post("/v1/voices", status_code=201, responses=declared(400, 409))
async def add_voice(
    _key: Caller,
    api: Api,
    voice_id: Annotated[str, Form(pattern=VOICE_ID_PATTERN)],
    transcript: Annotated[str, Form(min_length=1, max_length=1000)],
    file: Annotated[UploadFile, File()],
    force: Annotated[bool, Form()] = False,
) -> dict[str, Any]:
    limit = api.settings.api_max_upload_bytes
    clip = await file.read(limit + 1)
    if len(clip) > limit:
        raise ApiError(413, f"clip over {limit:,} bytes", code="too_large", param="file")
    try:
        return await run_in_threadpool(api.voices.library.add, voice_id, clip, transcript, force=force)
    except VoiceExists as exc:
        raise ApiError(409, f"{exc}; send force=true to replace it", code="voice_exists", param="voice_id") from exc
    except (BadReferenceAudio, InvalidRequest) as exc:
        raise ApiError(400, str(exc), code=exc.code.value, param="file") from exc


@router.get("/v1/voices", responses=declared())
async def list_voices(_key: Caller, api: Api) -> dict[str, Any]:
    return {"object": "list", "data": await run_in_threadpool(api.voices.library.list)}


@router.get("/v1/voices/{voice_id}", responses=declared(404))
async def get_voice(voice_id: str, _key: Caller, api: Api) -> dict[str, Any]:
    return await api.voices.require(voice_id)


@router.delete("/v1/voices/{voice_id}", responses=declared(404))
async def delete_voice(voice_id: str, _key: Caller, api: Api) -> dict[str, Any]:
    await api.voices.remove(voice_id)
    return {"id": voice_id, "deleted": True}
