"""`f5-worker run`: the long-running worker process. Start-up: settings → preflight (settings, a model, the
queue and bucket answer: seconds, before the model) → model loaded → warm-up → first poll, each step timed;
then the loop until SIGTERM (or an empty queue in burst mode)."""

from __future__ import annotations

import time

from consumer.core.logs import configure, get_logger
from consumer.core.metrics import Metrics
from consumer.core.settings import Settings
from consumer.engine import Engine
from consumer.engine.asr import Transcriber, build_transcriber
from consumer.engine.factory import build_engine
from consumer.worker.cloudwatch_metrics import start_cloudwatch_metrics
from consumer.worker.health import HealthServer
from consumer.worker.loop import Worker
from consumer.worker.preflight import check_aws, check_model, check_settings
from consumer.worker.services import StartupTimeline, build_services

log = get_logger(__name__)


def start_engine(settings: Settings, timeline: StartupTimeline) -> Engine:
    engine = build_engine(settings)
    engine.load()
    timeline.mark("model_loaded")
    if settings.warm_up:
        engine.warm_up()
        timeline.mark("warm_up_done")
    return engine


def start_transcriber(settings: Settings, timeline: StartupTimeline) -> Transcriber | None:
    """The ASR model for clips without a transcript, when `asr_model` is set (loaded once, here)."""
    transcriber = build_transcriber(settings)
    if transcriber is not None:
        timeline.mark("asr_loaded")
    return transcriber


def run_worker(
    settings: Settings, process_start: float | None = None, engine: Engine | None = None, *, checked: bool = False
) -> int:
    """`checked`: the preflight already ran (the CLI runs it before importing the engine's modules)."""
    configure(settings.log_level, settings.log_json)
    metrics = Metrics()
    timeline = StartupTimeline(metrics, process_start if process_start is not None else time.monotonic())
    timeline.mark("settings_loaded")
    if not checked:
        check_settings(settings)
        if engine is None:
            check_model(settings)
        check_aws(settings)
    timeline.mark("aws_checked")
    owns_engine = engine is None  # an engine handed in is the caller's to close
    health = cloudwatch = None
    if settings.health_port is not None:
        token = settings.health_token.get_secret_value() if settings.health_token else None
        health = HealthServer(
            metrics, settings.health_max_poll_age_s, settings.health_port, settings.health_host, token
        ).start()
    try:
        engine = engine or start_engine(settings, timeline)
        transcriber = start_transcriber(settings, timeline)
        services = build_services(settings, engine, metrics=metrics, transcriber=transcriber)
        cloudwatch = start_cloudwatch_metrics(settings, metrics)  # None unless cloudwatch_metrics is on
        worker = Worker(services)
        worker.install_signal_handlers()
        metrics.ready.set(1)
        if health is not None:
            health.mark_ready()
        log.info(
            "worker_ready",
            startup=timeline.phases,
            max_receive_count=services.max_receive_count,
            asr_model=settings.asr_model or None,
        )
        return worker.run()
    finally:
        if cloudwatch is not None:
            cloudwatch.close()  # sends the last interval's figures
        if owns_engine and engine is not None:
            engine.close()  # frees the device's memory before the process exits
        if health is not None:
            health.close()
