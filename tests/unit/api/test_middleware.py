"""The API's outermost layer (`consumer/api/middleware.py`): bodies over the limit refused from their declared
length, before any route reads them; every answer counted by route and status."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, generate_latest

from consumer.api.middleware import FORM_FIELDS_BYTES, LimitsAndMetrics
from consumer.core.settings import Settings

MAX_BODY, MAX_UPLOAD = 2_000, 5_000


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def client(registry) -> TestClient:
    app = FastAPI()
    read: list[int] = []
    app.state.read = read

    @app.post("/v1/jobs")
    async def jobs(request: Request) -> dict[str, int]:
        read.append(len(await request.body()))
        return {"read": read[-1]}

    @app.post("/v1/voices")
    async def voices(request: Request) -> dict[str, int]:
        read.append(len(await request.body()))
        return {"read": read[-1]}

    requests_total = Counter("f5_api_requests", "API requests", ["route", "status"], registry=registry)
    settings = Settings(api_max_body_bytes=MAX_BODY, api_max_upload_bytes=MAX_UPLOAD)
    app.add_middleware(LimitsAndMetrics, settings=settings, requests_total=requests_total)
    return TestClient(app)


def counted(registry: CollectorRegistry, route: str, status: int) -> float:
    return registry.get_sample_value("f5_api_requests_total", {"route": route, "status": str(status)}) or 0.0


def test_a_body_within_the_limit_reaches_its_route_and_is_counted(client, registry):
    response = client.post("/v1/jobs", content=b"x" * MAX_BODY)
    assert response.status_code == 200 and response.json() == {"read": MAX_BODY}
    assert counted(registry, "/v1/jobs", 200) == 1


def test_a_body_over_the_limit_is_413_in_openais_shape_and_never_read(client, registry):
    response = client.post("/v1/jobs", content=b"x" * (MAX_BODY + 1))
    assert response.status_code == 413
    assert response.json()["error"] == {
        "message": f"request body over {MAX_BODY:,} bytes",
        "type": "invalid_request_error",
        "param": None,
        "code": "too_large",
    }
    assert client.app.state.read == []
    assert counted(registry, "refused", 413) == 1 and counted(registry, "/v1/jobs", 413) == 0


def test_uploads_have_their_own_limit_with_room_for_the_form_fields(client):
    limit = MAX_UPLOAD + FORM_FIELDS_BYTES
    assert client.post("/v1/voices", content=b"x" * limit).status_code == 200
    assert client.post("/v1/voices", content=b"x" * (limit + 1)).status_code == 413
    assert client.post("/v1/jobs", content=b"x" * (MAX_BODY + 1)).status_code == 413  # not the upload limit


def test_an_unmatched_path_is_counted_as_such(client, registry):
    assert client.get("/nowhere").status_code == 404
    assert counted(registry, "unmatched", 404) == 1
    assert b'f5_api_requests_total{route="unmatched",status="404"} 1.0' in generate_latest(registry)
