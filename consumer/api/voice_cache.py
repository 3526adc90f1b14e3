"""The voice library as the routes see it: a voice's manifest, or an `ApiError` saying it is unknown. Speech
requests may reuse a manifest looked up in the last `revalidate_s` (no S3 read per request); a voice's own URL
always looks it up."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from consumer.core.errors import ApiError
from consumer.producer.voice_library import VoiceLibrary
from contracts.limits import VOICE_ID_PATTERN


class VoiceCache:
    def __init__(self, library: VoiceLibrary, revalidate_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.library = library
        self._revalidate_s = revalidate_s
        self._clock = clock
        self._seen: dict[str, tuple[float, dict[str, Any]]] = {}  # voice id → (looked up at, manifest)

    async def require(self, voice_id: str, status: int = 404, *, cached: bool = False) -> dict[str, Any]:
        """The voice's manifest; `status` (404 for a voice URL, 400 for a request naming it) when unknown. `cached`:
        a voice looked up in the last `revalidate_s` is not looked up again (speech requests)."""
        hit = self._seen.get(voice_id)
        if cached and hit is not None and self._clock() - hit[0] < self._revalidate_s:
            return hit[1]
        manifest = None
        if re.match(VOICE_ID_PATTERN, voice_id):
            manifest = await run_in_threadpool(self.library.show, voice_id)
        if manifest is None:
            message = f"unknown voice {voice_id!r}: add it first (POST /v1/voices)"
            raise ApiError(status, message, code="unknown_voice", param="voice")
        self._seen[voice_id] = (self._clock(), manifest)
        return manifest

    async def remove(self, voice_id: str) -> None:
        """Delete the voice from the library and forget it here; 404 when unknown."""
        await self.require(voice_id)
        await run_in_threadpool(self.library.remove, voice_id)
        self._seen.pop(voice_id, None)
