"""The outermost layer of the API: bodies over the limits are refused before they are read (413), and every
request is counted by route and status (`f5_api_requests_total`)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from prometheus_client import Counter

from consumer.api.errors import error_body
from consumer.core.settings import Settings

UPLOAD_PATH = "/v1/voices"  # multipart clips: their own limit, plus room for the form fields
FORM_FIELDS_BYTES = 65_536


class LimitsAndMetrics:
    """Plain ASGI, not `BaseHTTPMiddleware`, which would hide a client's disconnect from the routes."""

    def __init__(self, app: Any, settings: Settings, requests_total: Counter) -> None:
        self.app, self.settings, self.requests_total = app, settings, requests_total

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length", b"")
        upload = scope["path"] == UPLOAD_PATH
        limit = self.settings.api_max_upload_bytes + FORM_FIELDS_BYTES if upload else self.settings.api_max_body_bytes
        if length.isdigit() and int(length) > limit:
            body = error_body(413, f"request body over {limit:,} bytes", "too_large")
            await JSONResponse(body, 413)(scope, receive, send)
            self.requests_total.labels("refused", "413").inc()
            return
        status = {"code": 500}

        async def remember_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, remember_status)
        route = getattr(scope.get("route"), "path", "unmatched")
        self.requests_total.labels(route, str(status["code"])).inc()
