"""The routes' dependencies: the process's shared state (`Api`) and the caller's key (`Caller`: 401 without a
valid key, 429 past its rate limit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from consumer.api.state import ApiState
from consumer.core.errors import ApiError


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


Api = Annotated[ApiState, Depends(api_state)]


def caller(api: Api, authorization: Annotated[str | None, Header()] = None) -> str:
    """The key's name (`local` when keyless), after taking one request from its rate limit."""
    key = api.keys.identify(authorization)
    if key is None:
        raise ApiError(401, "missing or wrong API key: send Authorization: Bearer <key>", code="invalid_api_key")
    wait_s = api.limiter.take(key)
    if wait_s > 0:
        raise ApiError(
            429, "rate limit reached for this key", code="rate_limited", headers={"Retry-After": f"{wait_s:.0f}"}
        )
    return key


Caller = Annotated[str, Depends(caller)]
