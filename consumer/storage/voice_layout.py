"""Where a library voice lives in S3: `{prefix}/{voice_id}/reference.wav` and `{prefix}/{voice_id}/manifest.json`.
One definition, read by the worker's voice resolver and written by the producers' voice library."""

from __future__ import annotations

from dataclasses import dataclass

REFERENCE_OBJECT = "reference.wav"
MANIFEST_OBJECT = "manifest.json"


@dataclass(frozen=True)
class VoiceLayout:
    prefix: str = "voices"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", self.prefix.strip("/"))

    def reference_key(self, voice_id: str) -> str:
        return f"{self.prefix}/{voice_id}/{REFERENCE_OBJECT}"

    def manifest_key(self, voice_id: str) -> str:
        return f"{self.prefix}/{voice_id}/{MANIFEST_OBJECT}"

    def is_manifest_key(self, key: str) -> bool:
        return key.startswith(f"{self.prefix}/") and key.endswith(f"/{MANIFEST_OBJECT}")
