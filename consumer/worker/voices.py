"""Resolves a request's voice to a processed `Reference`: from the voice library (`voices/{id}/`) or from
an S3 clip in an allowed bucket. Processed references are cached in memory by S3 ETag and given transcript
(bounded LRU). A clip sent without a transcript is transcribed by the worker's ASR model, once per ETag."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import ClientError
from cachetools import LRUCache

from consumer.audio.reference import decode_reference, normalise_transcript, process_reference_audio
from consumer.aws.failures import is_forbidden, is_missing, storage_errors
from consumer.core.errors import BadReferenceAudio, ForbiddenLocation, InvalidRequest, UnknownVoice
from consumer.core.logs import get_logger
from consumer.engine import Reference
from consumer.engine.asr import Transcriber, recognised_text
from consumer.storage.voice_layout import VoiceLayout, voice_version
from contracts.requests import VoiceRef

log = get_logger(__name__)

MAX_REFERENCE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class VoiceSource:
    bucket: str
    key: str
    transcript: str | None  # None: from the voice's manifest (library) or recognised (clip)
    library: bool = False


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class VoiceResolver:
    def __init__(
        self,
        s3: Any,
        bucket: str,
        voices_prefix: str,
        allowed_buckets: tuple[str, ...],
        sample_rate: int,
        cache_size: int = 64,
        revalidate_after_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        transcriber: Transcriber | None = None,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._layout = VoiceLayout(voices_prefix)
        self._allowed = {bucket, *allowed_buckets}
        self._sample_rate = sample_rate
        # (source, etag): the source names the transcript too, so a clip sent with different transcripts (or none,
        # then recognised) is one entry each.
        self._cache: LRUCache[tuple[VoiceSource, str], Reference] = LRUCache(maxsize=cache_size)
        # (bucket, key) → (etag, checked_at): within `revalidate_after_s` a cached reference is used without
        # a HEAD request; after it, the ETag is checked again (a replaced clip is picked up then).
        self._checked: LRUCache[tuple[str, str], tuple[str, float]] = LRUCache(maxsize=cache_size)
        self._revalidate_after_s = revalidate_after_s
        self._clock = clock
        self._transcriber = transcriber
        self._lock = threading.Lock()
        self._asr_lock = threading.Lock()
        self._loading: LRUCache[tuple[str, str], threading.Lock] = LRUCache(maxsize=cache_size)

    def resolve(self, voice: VoiceRef) -> Reference:
        source = self._source(voice)
        cached = self._fresh(source)
        if cached is not None:
            return cached
        with self._lock:
            loading = self._loading.setdefault((source.bucket, source.key), threading.Lock())
        with loading:  # jobs arriving together with one voice: the first looks it up, the others wait for it
            cached = self._fresh(source)
            return cached if cached is not None else self._look_up(source, voice)

    def _fresh(self, source: VoiceSource) -> Reference | None:
        """The cached reference if its ETag was checked within `revalidate_after_s`."""
        with self._lock:
            checked = self._checked.get((source.bucket, source.key))
            if checked is not None and self._clock() - checked[1] < self._revalidate_after_s:
                return self._cache.get((source, checked[0]))
        return None

    def _look_up(self, source: VoiceSource, voice: VoiceRef) -> Reference:
        etag, size, version = self._head(source, voice)
        cache_key = (source, etag)
        with self._lock:
            self._checked[(source.bucket, source.key)] = (etag, self._clock())
            cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        if size > MAX_REFERENCE_BYTES:
            raise BadReferenceAudio(f"reference {source.key} is {size} bytes; at most {MAX_REFERENCE_BYTES}")
        clip_key = f"{source.bucket}/{source.key}@{etag}"
        if source.library or source.transcript is not None:
            transcript = source.transcript if source.transcript is not None else self._manifest_transcript(voice)
            data = self._get(source)
            reference = decode_reference(data, transcript, sample_rate=self._sample_rate, cache_key=clip_key)
        else:
            reference = self._recognise(source, cache_key, clip_key)
        reference = replace(reference, version=version)
        with self._lock:
            self._cache[cache_key] = reference
        return reference

    def _source(self, voice: VoiceRef) -> VoiceSource:
        if voice.voice_id is not None:
            return VoiceSource(self._bucket, self._layout.reference_key(voice.voice_id), None, library=True)
        assert voice.audio_uri is not None
        bucket, key = split_s3_uri(voice.audio_uri)
        if bucket not in self._allowed:
            raise ForbiddenLocation(f"reading references from bucket {bucket!r} is not allowed for this worker")
        if voice.transcript is None and self._transcriber is None:
            raise InvalidRequest(
                "the reference clip has no transcript and this worker has no ASR model (F5_WORKER_ASR_MODEL): "
                "give voice.transcript, the exact words spoken in the clip"
            )
        return VoiceSource(bucket, key, voice.transcript)

    def _recognise(self, source: VoiceSource, cache_key: tuple[VoiceSource, str], clip_key: str) -> Reference:
        """A clip without a transcript: the words recognised in exactly the processed audio the engine gets. One
        recognition at a time (the model runs one anyway), so jobs arriving together with a new clip wait for the
        first one's result instead of each transcribing it."""
        assert self._transcriber is not None  # checked in `_source`
        with self._asr_lock:
            with self._lock:
                cached = self._cache.get(cache_key)
            if cached is not None:
                return cached
            samples = process_reference_audio(self._get(source), sample_rate=self._sample_rate, clip_long=True)
            t0 = time.monotonic()
            text = recognised_text(self._transcriber.transcribe(samples, self._sample_rate))
            log.info(
                "reference_transcribed",
                reference=clip_key,
                asr_model=self._transcriber.model_id,
                seconds=round(time.monotonic() - t0, 3),
                chars=len(text),
            )
            reference = Reference(samples, self._sample_rate, normalise_transcript(text), clip_key)
            with self._lock:  # cached before the next waiter looks
                self._cache[cache_key] = reference
            return reference

    def _head(self, source: VoiceSource, voice: VoiceRef) -> tuple[str, int, str]:
        with storage_errors(f"looking up s3://{source.bucket}/{source.key}"):
            try:
                head = self._s3.head_object(Bucket=source.bucket, Key=source.key)
            except ClientError as exc:
                if is_missing(exc):
                    what = f"voice {voice.voice_id!r}" if voice.voice_id else f"reference {voice.audio_uri}"
                    raise UnknownVoice(f"{what} does not exist") from exc
                if is_forbidden(exc):
                    raise UnknownVoice(f"access denied to s3://{source.bucket}/{source.key}") from exc
                raise
        return str(head["ETag"]), int(head["ContentLength"]), voice_version(head)

    def _get(self, source: VoiceSource) -> bytes:
        with storage_errors(f"downloading s3://{source.bucket}/{source.key}"):
            return self._s3.get_object(Bucket=source.bucket, Key=source.key)["Body"].read()

    def _manifest_transcript(self, voice: VoiceRef) -> str:
        assert voice.voice_id is not None  # only library voices have manifests
        key = self._layout.manifest_key(voice.voice_id)
        with storage_errors(f"reading {key}"):
            try:
                body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if is_missing(exc):
                    raise UnknownVoice(f"voice {voice.voice_id!r} has no manifest") from exc
                raise
        try:
            transcript = json.loads(body)["transcript"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UnknownVoice(f"voice {voice.voice_id!r} has a broken manifest") from exc
        return str(transcript)
