"""Who may use the UI. It can read every run and start training, so:

- bound elsewhere than loopback, every request needs the token: `?token=` once (the answer sets
  a cookie, and the page is reloaded without it in the address), the cookie, or the header
  `X-Tunewright-Token`;
- bound to loopback, the Host header must name loopback too (a web page cannot rebind its own
  hostname to 127.0.0.1 and read the UI: DNS rebinding);
- requests that change something (POST) need the header `X-Tunewright-UI`, which another site's
  page cannot send without a CORS preflight that this app never allows.
"""

from __future__ import annotations

import hmac
import json
import secrets
from urllib.parse import parse_qs, urlencode

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

COOKIE = "tunewright_ui_token"
HEADER = "x-tunewright-token"
WRITE_HEADER = "x-tunewright-ui"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS


class GuardMiddleware:
    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        query = parse_qs(scope.get("query_string", b"").decode())
        if self.token is None and not is_loopback(_host_name(headers.get("host", ""))):
            await _refuse(scope, receive, send, 403, "this UI answers on 127.0.0.1 only")
            return
        if self.token is not None:
            given = _given_token(headers, query)
            if given is None or not hmac.compare_digest(given.encode(), self.token):
                await _refuse(scope, receive, send, 401, "missing or wrong token")
                return
            if "token" in query:  # set the cookie, then drop the token from the address
                await _set_cookie_and_reload(scope, send, query, given)
                return
        if scope["method"] not in ("GET", "HEAD") and WRITE_HEADER not in headers:
            await _refuse(scope, receive, send, 403, f"missing header {WRITE_HEADER}")
            return
        await self.app(scope, receive, send)


def _given_token(headers: Headers, query: dict[str, list[str]]) -> str | None:
    if "token" in query:
        return query["token"][0]
    if HEADER in headers:
        return headers[HEADER]
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if host.count(":") == 1 else host


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _set_cookie_and_reload(
    scope: Scope, send: Send, query: dict[str, list[str]], token: str
) -> None:
    rest = {k: v for k, v in query.items() if k != "token"}
    location = scope["path"] + (f"?{urlencode(rest, doseq=True)}" if rest else "")
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode()),
                (b"set-cookie", cookie.encode()),
                (b"content-length", b"0"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
