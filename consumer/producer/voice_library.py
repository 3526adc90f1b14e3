"""The voice library in S3: `voices/{voice_id}/reference.wav` (the processed clip) and `manifest.json`
(transcript, transcript_source, duration, sample rate, sha256, created_at). Clips are validated before anything is
written; a clip added without a transcript is transcribed by the library's ASR model (`transcript_source: asr`).

Looking voices up (`show`, `list`, `unknown`) needs boto3 only: the audio modules are imported by `add`, so the
producer commands that check a voice before queueing start fast."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from consumer.aws.failures import is_conflict, is_missing
from consumer.core.errors import InvalidRequest, VoiceExists
from consumer.storage.voice_layout import VoiceLayout, voice_version
from contracts.limits import VOICE_ID_PATTERN

if TYPE_CHECKING:
    from consumer.engine.asr import Transcriber

EXAMPLE_VOICE_ID = "basic-en"  # `say`'s default voice; `f5-worker init` and `local` store it


class VoiceLibrary:
    def __init__(
        self,
        s3: Any,
        bucket: str,
        prefix: str = "voices",
        sample_rate: int = 24_000,
        transcriber: Transcriber | None = None,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._layout = VoiceLayout(prefix)
        self._sample_rate = sample_rate
        self._transcriber = transcriber

    def add(self, voice_id: str, audio: bytes, transcript: str | None = None, *, force: bool = False) -> dict[str, Any]:
        """Validate and store a voice; without a transcript, the ASR model's. Raises `BadReferenceAudio` or
        `InvalidRequest` for a bad clip (or a missing transcript without an ASR model), `VoiceExists` when the id
        is taken and not `force` (the clip is written If-None-Match, so two adds cannot both win)."""
        import soundfile as sf

        from consumer.audio.reference import decode_reference, process_reference_audio
        from consumer.engine.asr import recognised_text

        if not re.match(VOICE_ID_PATTERN, voice_id):
            raise InvalidRequest(f"voice id {voice_id!r} must match {VOICE_ID_PATTERN}")
        if transcript is None:  # recognised in exactly the processed audio that is stored
            transcriber = self._require_transcriber()
            samples = process_reference_audio(audio, sample_rate=self._sample_rate, clip_long=True)
            transcript, source = recognised_text(transcriber.transcribe(samples, self._sample_rate)), "asr"
        else:
            samples, source = decode_reference(audio, transcript, sample_rate=self._sample_rate).samples, "given"
        buffer = io.BytesIO()
        sf.write(buffer, samples, self._sample_rate, format="WAV", subtype="PCM_16")
        data = buffer.getvalue()
        sha256 = hashlib.sha256(data).hexdigest()
        condition = {} if force else {"IfNoneMatch": "*"}
        try:
            put = self._s3.put_object(
                Bucket=self._bucket,
                Key=self._layout.reference_key(voice_id),
                Body=data,
                ContentType="audio/wav",
                Metadata={"sha256": sha256},
                **condition,
            )
        except ClientError as exc:
            if is_conflict(exc):
                raise VoiceExists(f"voice {voice_id!r} exists") from exc
            raise
        manifest = {
            "voice_id": voice_id,
            "version": voice_version(put, sha256),
            "transcript": transcript.strip(),
            "transcript_source": source,
            "duration_s": round(len(samples) / self._sample_rate, 3),
            "sample_rate": self._sample_rate,
            "sha256": sha256,
            "created_at": datetime.now(UTC).isoformat(),
        }
        self._s3.put_object(
            Bucket=self._bucket,
            Key=self._layout.manifest_key(voice_id),
            Body=json.dumps(manifest, indent=2).encode(),
            ContentType="application/json",
        )
        return manifest

    def _require_transcriber(self) -> Transcriber:
        if self._transcriber is None:
            raise InvalidRequest(
                "no transcript given and no ASR model configured: give the exact words spoken in the clip "
                "(--transcript), or an ASR model (--asr-model / F5_WORKER_ASR_MODEL)"
            )
        return self._transcriber

    def add_example(self, voice_id: str = EXAMPLE_VOICE_ID, *, force: bool = True) -> dict[str, Any]:
        """Store the f5-tts wheel's English example clip as a voice (demo, `init`, tests, benchmarks). Raises
        `ModelSpecError` where f5-tts is not installed, `VoiceExists` when the id is taken and not `force`."""
        from consumer.engine.model_spec import EXAMPLE_VOICE_EN

        return self.add(voice_id, EXAMPLE_VOICE_EN.audio(), EXAMPLE_VOICE_EN.transcript, force=force)

    def list(self) -> list[dict[str, Any]]:
        """Manifests of every voice, sorted by id."""
        paginator = self._s3.get_paginator("list_objects_v2")
        manifests = []
        for page in paginator.paginate(Bucket=self._bucket, Prefix=f"{self._layout.prefix}/"):
            for obj in page.get("Contents", []):
                if self._layout.is_manifest_key(obj["Key"]):
                    manifests.append(
                        json.loads(self._s3.get_object(Bucket=self._bucket, Key=obj["Key"])["Body"].read())
                    )
        return sorted(manifests, key=lambda m: m["voice_id"])

    def show(self, voice_id: str) -> dict[str, Any] | None:
        """The voice's manifest; None when the id is unknown, or not a valid voice id (nothing is looked up)."""
        if not re.match(VOICE_ID_PATTERN, voice_id):
            return None
        try:
            body = self._s3.get_object(Bucket=self._bucket, Key=self._layout.manifest_key(voice_id))["Body"].read()
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        return json.loads(body)

    def unknown(self, voice_ids: Iterable[str]) -> tuple[str, ...]:
        """The ids among `voice_ids` that name no voice of the library, sorted (each looked up once)."""
        return tuple(voice_id for voice_id in sorted(set(voice_ids)) if self.show(voice_id) is None)

    def remove(self, voice_id: str) -> bool:
        if self.show(voice_id) is None:
            return False
        for key in (self._layout.reference_key(voice_id), self._layout.manifest_key(voice_id)):
            self._s3.delete_object(Bucket=self._bucket, Key=key)
        return True
