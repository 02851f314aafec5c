"""What the server records about each request: the JSONL request log and Prometheus metrics,
both fed by one middleware, plus the two gates in front of the routes (API keys, body size).

The middleware are plain ASGI so they see every request, including those refused before any
route runs, and streaming responses until their last byte. Routes add what only they know
(model, token counts, content) to the request's `RequestRecord` in `scope["state"]`.
/health and /metrics are neither logged nor counted: probes and scrapes are not traffic, and
they would swamp the latency figures `tunewright monitor` reports.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunewright.files import append_jsonl
from tunewright.request_log import RequestRecord
from tunewright.serving.errors import APIError

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/models")
UNRECORDED = ("/health", "/metrics")
# Generation on a CPU takes seconds: buckets reach 2 minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class RequestLog:
    """Appends one JSON line per request; a line is flushed as soon as it is written."""

    def __init__(self, path: Path | None, with_content: bool) -> None:
        self.path = path
        self.with_content = with_content
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: RequestRecord, latency_s: float) -> None:
        if self.path is None:
            return
        line = record.log_line(latency_s, self.with_content)
        with self._lock:
            append_jsonl(self.path, [line])


class Metrics:
    """Prometheus metrics in a registry of their own, so several apps (tests) can coexist."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tunewright_requests",
            "Requests by endpoint, model and HTTP status.",
            ["endpoint", "model", "status"],
            registry=r,
        )
        self.errors = Counter(
            "tunewright_errors",
            "Requests that failed: status >= 400, or an error after a stream started.",
            ["endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "tunewright_request_latency_seconds",
            "Time from request to last byte of the response.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "tunewright_prompt_tokens", "Prompt tokens received.", ["model"], registry=r
        )
        self.completion_tokens = Counter(
            "tunewright_completion_tokens", "Completion tokens generated.", ["model"], registry=r
        )
        self.tokens_per_second = Gauge(
            "tunewright_tokens_per_second",
            "Completion tokens per second of the last finished generation batch.",
            registry=r,
        )
        self.batch_size = Histogram(
            "tunewright_batch_size",
            "Requests generated together in one batch (streams run alone).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.queue_depth = Gauge(
            "tunewright_queue_depth", "Generation jobs waiting for the worker.", registry=r
        )

    def observe(self, record: RequestRecord, latency_s: float) -> None:
        # Only served ids become label values: arbitrary client strings would grow the series
        # without bound.
        model = record.model if record.served and record.model else ""
        status = str(record.status)
        self.requests.labels(record.endpoint, model, status).inc()
        self.latency.labels(record.endpoint).observe(latency_s)
        if record.status >= 400 or record.error:
            self.errors.labels(record.endpoint, status).inc()
        if model:
            self.prompt_tokens.labels(model).inc(record.prompt_tokens)
            self.completion_tokens.labels(model).inc(record.completion_tokens)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RecordMiddleware:
    """Outermost: gives each request an id and a RequestRecord, then logs and counts it."""

    def __init__(self, app: ASGIApp, log: RequestLog, metrics: Metrics) -> None:
        self.app = app
        self.log = log
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNRECORDED:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        record = RequestRecord(
            request_id=secrets.token_hex(12),
            endpoint=path if path in ENDPOINTS else "other",
            started=time.time(),
        )
        scope.setdefault("state", {})["record"] = record
        clock = time.perf_counter()
        finished = False

        def finish() -> None:
            nonlocal finished
            if not finished:
                finished = True
                latency = time.perf_counter() - clock
                self.metrics.observe(record, latency)
                self.log.write(record, latency)

        async def send_recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", record.request_id.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Recorded before the last byte goes out, so a client that has its answer can
                # already read the log line and the metrics.
                finish()
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        except Exception as exc:  # a bug: Starlette's outer handler answers 500
            record.status = record.status or 500
            record.error = record.error or f"internal error ({type(exc).__name__})"
            raise
        finally:
            finish()  # no-op unless the response never completed


class AuthMiddleware:
    """With API keys configured, /v1/* and /metrics need `Authorization: Bearer <key>`
    (checked before the body is read); /metrics takes `metrics_key` instead when one is set,
    so a scraper need not hold a key that can generate. Keys are compared in constant time and
    never echoed or logged."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...], metrics_key: str | None) -> None:
        self.app = app
        self.keys = [key.encode() for key in keys]
        self.metrics_keys = [metrics_key.encode()] if metrics_key else self.keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = self._keys_for(scope)
        if not keys:
            await self.app(scope, receive, send)
            return
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            error = APIError(
                401,
                "Missing API key: send it in the header 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        elif not any(hmac.compare_digest(token.strip().encode(), key) for key in keys):
            error = APIError(401, "Incorrect API key provided.", code="invalid_api_key")
        else:
            await self.app(scope, receive, send)
            return
        _note(scope, error.message)
        await error.response()(scope, receive, send)

    def _keys_for(self, scope: Scope) -> list[bytes]:
        if scope["type"] != "http":
            return []
        if scope["path"] == "/metrics":
            return self.metrics_keys
        return self.keys if scope["path"].startswith("/v1") else []


class BodyTooLarge(HTTPException):
    """Raised while the body is read; FastAPI passes HTTPExceptions through to the handler."""


class BodyLimitMiddleware:
    """Refuses bodies over `limit` bytes: by Content-Length up front, else while reading (a
    chunked body has no length)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            error = APIError(400, self.message(declared), code="request_too_large")
            _note(scope, error.message)
            await error.response()(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise BodyTooLarge(400, self.message(f"over {received}"))
            return message

        await self.app(scope, counting_receive, send)

    def message(self, size: str) -> str:
        return f"The request body is {size} bytes; this server accepts at most {self.limit}."


def _note(scope: Scope, message: str) -> None:
    record = scope.get("state", {}).get("record")
    if record is not None:
        record.error = message
