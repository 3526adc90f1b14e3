"""What every route of one API process shares, built once by `create_app` and kept on `app.state.api`: settings,
AWS clients, keys and rate limit, the gateway, the voice library and its cache, the waiter, the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from consumer.api.auth import ApiKeys, RateLimiter
from consumer.api.gateway import Gateway
from consumer.api.voice_cache import VoiceCache
from consumer.api.waiter import Waiter
from consumer.aws.clients import AwsClients, make_clients, make_cloudwatch
from consumer.aws.requests_counter import count_aws_requests
from consumer.core.settings import Settings
from consumer.producer.voice_library import VoiceLibrary


@dataclass(frozen=True)
class ApiMetrics:
    """The API's own Prometheus registry (`/metrics`)."""

    registry: CollectorRegistry
    requests_total: Counter  # by route and status
    speech_seconds: Histogram
    speech_first_byte_seconds: Histogram  # streamed answers: request to first audio byte
    aws_requests: Counter  # by operation

    @classmethod
    def create(cls) -> ApiMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            requests_total=Counter("f5_api_requests", "API requests", ["route", "status"], registry=registry),
            speech_seconds=Histogram("f5_api_speech_seconds", "Speech request latency", registry=registry),
            speech_first_byte_seconds=Histogram(
                "f5_api_speech_first_byte_seconds", "Streamed speech: time to the first audio byte", registry=registry
            ),
            aws_requests=Counter(
                "f5_api_aws_requests", "AWS API calls made by this process", ["operation"], registry=registry
            ),
        )


@dataclass(frozen=True)
class ApiState:
    settings: Settings
    clients: AwsClients
    cloudwatch: Any
    keys: ApiKeys
    limiter: RateLimiter
    gateway: Gateway
    voices: VoiceCache
    waiter: Waiter
    metrics: ApiMetrics

    @classmethod
    def build(cls, settings: Settings, clients: AwsClients | None = None) -> ApiState:
        """Raises `KeyConfigError` for malformed key hashes. With an events queue, the waiter listens at once."""
        clients = clients or make_clients(settings, max_pool_connections=64)
        keys = ApiKeys.parse(settings.api_key_hashes)
        gateway = Gateway(settings, clients)
        library = VoiceLibrary(clients.s3, settings.bucket, settings.voices_prefix)
        cloudwatch = make_cloudwatch(settings)
        metrics = ApiMetrics.create()
        count_aws_requests((clients.sqs, clients.s3, clients.dynamodb), metrics.aws_requests)
        # after the counter: the waiter's thread starts its first receive at once
        waiter = Waiter(gateway.client.jobs, sqs=clients.sqs, events_queue_url=settings.api_events_queue_url)
        return cls(
            settings=settings,
            clients=clients,
            cloudwatch=cloudwatch,
            keys=keys,
            limiter=RateLimiter(settings.api_rate_per_minute),
            gateway=gateway,
            voices=VoiceCache(library, settings.voice_revalidate_s),
            waiter=waiter,
            metrics=metrics,
        )
