"""Wire contracts of f5-worker: the request producers enqueue and the events the worker publishes.

Pure pydantic v2. Importing this package never imports torch or boto3, so producers can depend on it alone.
"""

from contracts.events import (
    EVENT_TYPES,
    AudioOutput,
    ErrorCode,
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
