"""The API's OpenAPI document as it answers: validation errors are 400 (as OpenAI's), declared on each route
(`errors.declared`), so FastAPI's default 422 and its schemas leave the document."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def document_without_422(app: FastAPI) -> dict[str, Any]:
    """`app.openapi`: built once, then cached on the app as FastAPI's own is."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for name in FASTAPI_VALIDATION_SCHEMAS:
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
