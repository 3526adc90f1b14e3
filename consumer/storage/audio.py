"""Audio objects in S3: deterministic output keys, allowlisted buckets, uploads that never duplicate."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from consumer.audio.encoding import CONTENT_TYPES, EXTENSIONS
from consumer.aws.failures import error_code, http_status, is_conflict, is_missing, storage_errors
from consumer.core.errors import ForbiddenLocation, StorageError
from consumer.core.logs import get_logger
from contracts.events import AudioOutput
from contracts.requests import AudioFormat, SynthesisRequest

log = get_logger(__name__)

# Object metadata that makes an uploaded object self-describing: a redelivered job whose audio exists
# rebuilds its event from these instead of synthesizing again.
_META_FIELDS = ("job-id", "sha256", "duration-s", "sample-rate", "seed", "model-id", "synthesis-s")


@dataclass(frozen=True)
class OutputLocation:
    bucket: str
    key: str
    format: AudioFormat

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(frozen=True)
class StoredAudio:
    output: AudioOutput
    seed: int
    model_id: str
    synthesis_s: float
    voice_version: str = ""


def output_location(
    request: SynthesisRequest, default_bucket: str, default_prefix: str, allowed_buckets: tuple[str, ...]
) -> OutputLocation:
    """`{prefix}/{job_id}.{ext}`: the same job always maps to the same object."""
    bucket = request.output.bucket or default_bucket
    if bucket != default_bucket and bucket not in allowed_buckets:
        raise ForbiddenLocation(f"output bucket {bucket!r} is not allowed for this worker")
    prefix = request.output.key_prefix if request.output.key_prefix is not None else default_prefix.strip("/")
    ext = EXTENSIONS[request.output.format]
    key = f"{prefix}/{request.job_id}.{ext}" if prefix else f"{request.job_id}.{ext}"
    return OutputLocation(bucket=bucket, key=key, format=request.output.format)


class AudioStore:
    BUCKET_SEEN_S = 300.0  # a bucket found to exist is not asked about again for this long

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self._buckets_seen: dict[str, float] = {}  # bucket → monotonic time it was last found

    def check_bucket(self, location: OutputLocation) -> None:
        """Before the device is used: raise `StorageError` (retryable: an operator can create it, then the
        retry or a redrive succeeds) when the output bucket does not exist, instead of finding out at upload
        after synthesis. Asked with a one-byte GET of the output key, which the worker's policy allows (HeadBucket
        needs an unconditional s3:ListBucket): NoSuchBucket tells a missing bucket from a missing key, and a
        403 passes (the upload tells)."""
        seen = self._buckets_seen.get(location.bucket)
        if seen is not None and time.monotonic() - seen < self.BUCKET_SEEN_S:
            return
        try:
            self._s3.get_object(Bucket=location.bucket, Key=location.key, Range="bytes=0-0")
        except ClientError as exc:
            if error_code(exc) == "NoSuchBucket":
                raise StorageError(
                    f"output bucket {location.bucket} does not exist (create it, or fix the request's output.bucket)"
                ) from exc
            if not (is_missing(exc) or http_status(exc) in (403, 416)):
                raise
        self._buckets_seen[location.bucket] = time.monotonic()

    def find(self, location: OutputLocation) -> StoredAudio | None:
        """The audio a previous attempt already uploaded, if it is complete."""
        with storage_errors(f"checking {location.uri}"):
            try:
                head = self._s3.head_object(Bucket=location.bucket, Key=location.key)
            except ClientError as exc:
                if is_missing(exc):
                    return None
                raise
        meta = head.get("Metadata", {})
        if not all(f in meta for f in _META_FIELDS):
            return None  # not written by f5-worker
        return StoredAudio(
            output=AudioOutput(
                uri=location.uri,
                bucket=location.bucket,
                key=location.key,
                format=location.format,
                content_type=head.get("ContentType", CONTENT_TYPES[location.format]),
                sample_rate=int(meta["sample-rate"]),
                duration_s=float(meta["duration-s"]),
                bytes=int(head["ContentLength"]),
                sha256=meta["sha256"],
            ),
            seed=int(meta["seed"]),
            model_id=meta["model-id"],
            synthesis_s=float(meta["synthesis-s"]),
            voice_version=meta.get("voice-version", ""),
        )

    def put(
        self,
        location: OutputLocation,
        data: bytes | Path,
        *,
        job_id: str,
        sample_rate: int,
        duration_s: float,
        seed: int,
        model_id: str,
        synthesis_s: float,
        voice_version: str = "",
        sha256: str | None = None,
    ) -> StoredAudio:
        """Store the audio (bytes, or a file streamed from disk: long-form jobs) write-once."""
        size = data.stat().st_size if isinstance(data, Path) else len(data)
        sha256 = sha256 or _sha256(data)
        metadata = {
            "job-id": job_id,
            "sha256": sha256,
            "duration-s": f"{duration_s:.4f}",
            "sample-rate": str(sample_rate),
            "seed": str(seed),
            "model-id": model_id,
            "synthesis-s": f"{synthesis_s:.4f}",
        }
        if voice_version:
            metadata["voice-version"] = voice_version
        # Write-once: `If-None-Match: *` makes the first stored version the only one, however long a stale
        # attempt was paused. A 412 means another attempt stored this job's audio first: that object wins and
        # the event describes it. (A retried put whose first try landed also answers 412 and finds its own.)
        with storage_errors(f"uploading {location.uri}"):
            try:
                self._put_object(
                    data,
                    Bucket=location.bucket,
                    Key=location.key,
                    ContentType=CONTENT_TYPES[location.format],
                    Metadata=metadata,
                    ChecksumAlgorithm="SHA256",
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                if not is_conflict(exc):
                    raise
                stored = self.find(location)
                if stored is None:
                    raise ForbiddenLocation(
                        f"{location.uri} holds an object f5-worker did not write; it is never overwritten"
                    ) from exc
                log.info("audio_already_stored", uri=location.uri, consequence="the stored object is the result")
                return stored
        output = AudioOutput(
            uri=location.uri,
            bucket=location.bucket,
            key=location.key,
            format=location.format,
            content_type=CONTENT_TYPES[location.format],
            sample_rate=sample_rate,
            duration_s=round(duration_s, 4),
            bytes=size,
            sha256=sha256,
        )
        return StoredAudio(output, seed, model_id, round(synthesis_s, 4), voice_version)

    def _put_object(self, data: bytes | Path, **params: Any) -> Any:
        """One PutObject (a file is reopened on every try, so a retry never sends a half-read stream). A single
        PUT takes objects up to 5 GB: 100,000 characters of speech is about 330 MB as 24 kHz WAV."""
        if isinstance(data, bytes):
            return self._s3.put_object(Body=data, **params)
        with data.open("rb") as body:
            return self._s3.put_object(Body=body, **params)

    def presigned_url(self, bucket: str, key: str, expires_s: int = 3600) -> str:
        return self._s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s)


def _sha256(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    with data.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
