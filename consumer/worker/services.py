"""Wiring: settings → clients → services → worker. The start-up timeline is logged and exported."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from consumer.aws.clients import AwsClients, make_clients
from consumer.aws.queue import Queue
from consumer.aws.requests_counter import count_aws_requests
from consumer.core.logs import get_logger
from consumer.core.metrics import Metrics
from consumer.core.settings import Settings
from consumer.engine import Engine
from consumer.engine.asr import Transcriber
from consumer.storage.audio import AudioStore
from consumer.storage.job_index import IndexWriter, JobIndex, Notes
from consumer.storage.jobs import JobStore
from consumer.storage.record_backends import records_for
from consumer.storage.stream_blocks import StreamBlocks
from consumer.storage.workers import HourlyTally, WorkerRegistry
from consumer.worker.admission import Admission
from consumer.worker.delivery import Deliveries
from consumer.worker.notify import Notifier
from consumer.worker.progress import RealTimeFactor
from consumer.worker.texts import TextResolver
from consumer.worker.voices import VoiceResolver

log = get_logger(__name__)


@dataclass(frozen=True)
class Services:
    """Everything a job needs, built once per process (`build_services`)."""

    settings: Settings
    queue: Queue
    jobs: JobStore
    audio: AudioStore
    voices: VoiceResolver
    engine: Engine
    notifier: Notifier
    deliveries: Deliveries
    metrics: Metrics
    texts: TextResolver
    streams: StreamBlocks  # streamed jobs' blocks (in the worker's bucket)
    max_receive_count: int | None = None
    rtf: RealTimeFactor = field(default_factory=RealTimeFactor)  # this worker's measured speed, for ETAs
    workers: WorkerRegistry | None = None  # this worker's liveness record (`f5-worker status`)
    admission: Admission = field(default_factory=lambda: Admission(1))  # jobs' phases, for the poll loop
    index: IndexWriter | None = None  # this worker's batched index segments, written out at stop

    def close(self) -> None:
        """Write out what is still buffered (index segments)."""
        if self.index is not None:
            self.index.close()


class StartupTimeline:
    """Seconds from process start to each phase: settings → model loaded → warm-up → first poll."""

    def __init__(self, metrics: Metrics, t0: float | None = None) -> None:
        self._t0 = t0 if t0 is not None else time.monotonic()
        self._metrics = metrics
        self.phases: dict[str, float] = {}

    def mark(self, phase: str) -> float:
        elapsed = time.monotonic() - self._t0
        self.phases[phase] = round(elapsed, 3)
        self._metrics.startup_seconds.labels(phase).set(elapsed)
        log.info("startup_phase", phase=phase, seconds=round(elapsed, 3))
        return elapsed


def build_services(
    settings: Settings,
    engine: Engine,
    clients: AwsClients | None = None,
    metrics: Metrics | None = None,
    transcriber: Transcriber | None = None,
) -> Services:
    """`transcriber`: recognises clips sent without a transcript (loaded by `consumer.engine.asr.build_transcriber`)."""
    if not settings.queue_url or not settings.bucket:
        raise ValueError("F5_WORKER_QUEUE_URL and F5_WORKER_BUCKET are required")
    clients = clients or make_clients(settings)
    metrics = metrics or Metrics()
    # every call by operation (`f5_worker_aws_requests_total`); once per client: a second worker on the same
    # clients (`local --serve`) shares the first one's metrics
    count_aws_requests(
        (clients.sqs, clients.s3, clients.sns, clients.dynamodb),
        metrics.aws_requests,
        unique_id="f5-worker-aws-requests",
    )
    queue = Queue(clients.sqs, settings.queue_url, delete_window_s=settings.delete_batch_window_s)
    max_receive = settings.max_receive_count or queue.max_receive_count()
    index = IndexWriter(
        JobIndex(clients.s3, settings.bucket, settings.jobs_index_prefix),
        settings.worker_id,
        flush_s=settings.index_flush_s,
    )
    tally = HourlyTally()
    records = records_for(clients, settings)
    jobs = JobStore(clients.s3, settings.bucket, settings.jobs_prefix, index=Notes(index, tally), records=records)
    notifier = Notifier(clients.sns, settings.topic_arn, attempts=settings.notify_attempts)
    return Services(
        settings=settings,
        queue=queue,
        jobs=jobs,
        audio=AudioStore(clients.s3),
        voices=VoiceResolver(
            clients.s3,
            settings.bucket,
            settings.voices_prefix,
            settings.allowed_reference_buckets,
            sample_rate=engine.sample_rate,
            revalidate_after_s=settings.voice_revalidate_s,
            transcriber=transcriber,
        ),
        engine=engine,
        notifier=notifier,
        deliveries=Deliveries(settings, queue, jobs, notifier, metrics),
        metrics=metrics,
        texts=TextResolver(clients.s3, settings.bucket, settings.allowed_reference_buckets),
        streams=StreamBlocks(clients.s3, settings.bucket),
        max_receive_count=max_receive,
        workers=WorkerRegistry(clients.s3, settings.bucket, settings.workers_prefix, tally=tally),
        admission=admission_for(settings),
        index=index,
    )


def admission_for(settings: Settings) -> Admission:
    fixed = None if settings.max_in_flight == "auto" else settings.max_in_flight
    min_ahead = settings.batch_max_size if settings.engine == "f5" else 1
    return Admission(fixed, device_queue_s=settings.device_queue_s, min_ahead=min_ahead)
