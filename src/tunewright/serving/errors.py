"""Errors in OpenAI's JSON shape.

The openai SDK maps a status code to its typed exception (`BadRequestError`, ...) and reads the
message from `{"error": {...}}` at the top level; FastAPI's `HTTPException` nests it under
`"detail"`, so every error response is built here instead.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

ROUTES = "GET /v1/models, POST /v1/chat/completions, POST /v1/completions, GET /health"
# A parameter name is echoed only when it looks like one: names are request content too.
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_UNION_TAG = re.compile(r"^(str|int|float|bool|list|dict|none|literal)$|\[")

# OpenAI's `type` for each status we send.
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    429: "rate_limit_exceeded",
    499: "invalid_request_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    """A request we refuse, with the status and the OpenAI error fields to send."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds, sent as Retry-After (429, 503)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def from_validation_error(exc: RequestValidationError) -> APIError:
    """One 400 naming every invalid field, e.g. `messages[0].role: Input should be ...`."""
    problems = []
    params = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            return bad_request(f"The request body is not valid JSON: {reason}.")
        param = _param(tuple(error.get("loc", ())))
        if not param:  # the body as a whole: missing, or not a JSON object
            return bad_request("The request body must be a JSON object.")
        params.append(param)
        message = _unsupported(error) or str(error.get("msg", "invalid"))
        problems.append(f"{param}: {message}")
    if not problems:
        return bad_request("The request body is invalid.")
    return bad_request("; ".join(problems), param=params[0])


async def handle_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    _note_error(request, exc.message)
    return exc.response()


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    error = from_validation_error(exc)
    _note_error(request, error.message)
    return error.response()


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors in OpenAI's shape: 404/405 (unknown path, wrong method) list the
    routes (the path is not echoed); a 400 raised while reading the body (too large,
    unreadable) keeps its message."""
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", None) or "error"
    message = detail if status == 400 else f"{detail}. Routes: {ROUTES}."
    _note_error(request, message)
    return APIError(status, message).response()


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A bug: the client gets a plain 500 (no traceback); the server log gets the traceback."""
    message = f"internal error ({type(exc).__name__}); see the server log"
    _note_error(request, message)
    return APIError(500, message).response()


def _note_error(request: Request, message: str) -> None:
    record = getattr(request.state, "record", None)
    if record is not None:
        record.error = message


def _param(loc: tuple[Any, ...]) -> str:
    """('body', 'messages', 0, 'role') -> 'messages[0].role'."""
    text = ""
    for part in loc[1:] if loc[:1] == ("body",) else loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and _UNION_TAG.search(part):
            continue  # pydantic names the member of a union it tried: not a field
        elif isinstance(part, str) and _PARAM_NAME.match(part):
            text += f".{part}" if text else part
        else:  # a key the client made up (unknown parameter, a dict key): not repeated
            text += ".<key>" if text else "<key>"
    return text


def _unsupported(error: dict[str, Any]) -> str | None:
    if error.get("type") == "extra_forbidden":
        return "unsupported parameter (this server does not implement it)"
    return None
