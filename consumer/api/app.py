"""The FastAPI application (see docs/api.md): the state its routes share (`app.state.api`), OpenAI's error shapes,
the body limits and request metrics, CORS when configured, and the routers by area (`consumer/api/routes/`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException as StarletteHTTPException

from consumer.api.errors import api_error, http_error, validation_error
from consumer.api.middleware import LimitsAndMetrics
from consumer.api.openapi import document_without_422
from consumer.api.routes import console, jobs, ops, speech, voices
from consumer.api.state import ApiState
from consumer.aws.clients import AwsClients
from consumer.core.errors import ApiError
from consumer.core.settings import Settings

ROUTERS = (speech.router, jobs.router, voices.router, ops.router, console.router)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.api.waiter.close()


def create_app(settings: Settings, clients: AwsClients | None = None) -> FastAPI:
    api = ApiState.build(settings, clients)
    app = FastAPI(
        title="f5-worker API",
        summary="F5-TTS behind a durable queue: OpenAI-compatible speech, jobs and voices.",
        version="1",
        lifespan=lifespan,
    )
    app.state.api = api
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.api_cors_origins), allow_methods=["*"], allow_headers=["*"]
        )
    app.add_middleware(LimitsAndMetrics, settings=settings, requests_total=api.metrics.requests_total)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = lambda: document_without_422(app)  # type: ignore[method-assign]
    return app
