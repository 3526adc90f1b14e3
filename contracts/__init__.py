"""Wire contracts of f5-worker: the request producers enqueue and the events the worker publishes.

Pure pydantic v2. Importing this package never imports torch or boto3, so producers can depend on it alone.
Names are loaded on first use, so `contracts.codes` (standard library only) imports without pydantic.

Compatibility: requests and events of schema `v1` only grow by optional fields. Event consumers ignore unknown
fields and unknown error codes; workers reject unknown request fields (see `contracts.requests`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contracts.codes import ErrorCode
    from contracts.events import (
        EVENT_TYPES,
        AudioOutput,
        Event,
        SynthesisCompleted,
        SynthesisEvent,
        SynthesisFailed,
        Timings,
        parse_event,
    )
    from contracts.requests import (
        SCHEMA_VERSION,
        AudioFormat,
        NotifySpec,
        OutputSpec,
        SynthesisOptions,
        SynthesisRequest,
        VoiceRef,
        parse_request,
    )

__all__ = [
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "AudioFormat",
    "AudioOutput",
    "ErrorCode",
    "Event",
    "NotifySpec",
    "OutputSpec",
    "SynthesisCompleted",
    "SynthesisEvent",
    "SynthesisFailed",
    "SynthesisOptions",
    "SynthesisRequest",
    "Timings",
    "VoiceRef",
    "parse_event",
    "parse_request",
]
_EVENTS = {
    "EVENT_TYPES",
    "AudioOutput",
    "Event",
    "SynthesisCompleted",
    "SynthesisEvent",
    "SynthesisFailed",
    "Timings",
    "parse_event",
}
_HOMES = {name: "contracts.events" if name in _EVENTS else "contracts.requests" for name in __all__}
_HOMES["ErrorCode"] = "contracts.codes"


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'contracts' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
