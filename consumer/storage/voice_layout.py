"""Where a library voice lives in S3: `{prefix}/{voice_id}/reference.wav` and `{prefix}/{voice_id}/manifest.json`.
One definition, read by the worker's voice resolver and written by the producers' voice library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def voice_version(response: dict[str, Any], sha256: str | None = None) -> str:
    """Which version of a reference clip this is, from a PUT or HEAD response: the S3 `VersionId` where the
    bucket is versioned, else `sha256:` + 16 hex digits of the clip (the library stores the digest as object
    metadata), else `etag:` + its ETag (a clip the library did not write)."""
    version_id = response.get("VersionId")
    if version_id and version_id != "null":
        return str(version_id)
    digest = sha256 or response.get("Metadata", {}).get("sha256")
    if digest:
        return f"sha256:{digest[:16]}"
    return f"etag:{str(response.get('ETag', '')).strip(chr(34))}"
