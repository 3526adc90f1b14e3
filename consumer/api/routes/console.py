"""The web console (one static page that calls the API) and its icon."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter()
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2b5797"/>'
    b'<path d="M4 10V6h2l3-3v10l-3-3z M11 5.5a3.5 3.5 0 0 1 0 5" stroke="#fff" fill="#fff" stroke-width="1"/></svg>'
)


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


@router.get("/", include_in_schema=False)
async def console() -> HTMLResponse:
    return HTMLResponse(files("consumer.api").joinpath("console.html").read_text(encoding="utf-8"))
