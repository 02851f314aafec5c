"""The FastAPI app: OpenAI-compatible routes over one ModelPool and its generation worker.

Each generating route reads top to bottom: find the model (404), check the parameters, render
the prompt with that model's template, check the limits (400), then either await the worker's
result or stream it as server-sent events in OpenAI's chunk format, ending with `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from tunewright import __version__
from tunewright.chat import ChatTemplateError, prompt_ids
from tunewright.generate import Decoding
from tunewright.request_log import RequestRecord
from tunewright.serving import errors
from tunewright.serving.errors import APIError, bad_request
from tunewright.serving.monitor import prompt_words
from tunewright.serving.observe import (
    AuthMiddleware,
    BodyLimitMiddleware,
    Metrics,
    RecordMiddleware,
    RequestLog,
)
from tunewright.serving.pool import Entry, ModelPool
from tunewright.serving.schemas import (
    ChatRequest,
    CompletionRequest,
    chat_chunk,
    chat_completion,
    check_unsupported,
    model_card,
    requested_max_tokens,
    template_messages,
    text_chunk,
    text_completion,
    usage_chunk,
)
from tunewright.serving.worker import Generation, GenerationWorker

logger = logging.getLogger("tunewright.serve")


@dataclass(frozen=True)
class ServeSettings:
    api_keys: tuple[str, ...] = ()  # empty: no authentication
    max_prompt_tokens: int = 2048
    max_tokens: int = 512  # largest max_tokens a request may ask for; also the default
    log_content: bool = False
    # Non-streaming requests generated together. 32 clients on 2 CPU cores (bench/serve_load.py,
    # SmolLM2-135M, 16 tokens): 5.6 requests/s at 8, 8.3 at 16, 8.7 at 32 (p50 5.7, 3.8, 3.7 s).
    batch_size: int = 16
    max_body_bytes: int = 1 << 20  # 1 MiB holds ~250k tokens of text, far above any prompt limit


def build_app(pool: ModelPool, settings: ServeSettings, log_path: Path | None) -> FastAPI:
    metrics = Metrics()
    worker = GenerationWorker(pool, settings.batch_size, metrics)
    routes = Routes(pool, worker, settings, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    app = FastAPI(title="tunewright", version=__version__, lifespan=lifespan)
    app.add_api_route("/v1/models", routes.list_models, methods=["GET"])
    app.add_api_route("/v1/models/{model_id:path}", routes.get_model, methods=["GET"])
    app.add_api_route("/v1/chat/completions", routes.chat, methods=["POST"])
    app.add_api_route("/v1/completions", routes.completions, methods=["POST"])
    app.add_api_route("/health", routes.health, methods=["GET"])
    app.add_api_route("/metrics", routes.metrics, methods=["GET"])
    app.add_exception_handler(APIError, errors.handle_api_error)
    app.add_exception_handler(RequestValidationError, errors.handle_validation_error)
    app.add_exception_handler(HTTPException, errors.handle_http_error)
    app.add_exception_handler(Exception, errors.handle_unexpected)
    # Added innermost first: requests pass RecordMiddleware, then auth, then the body limit.
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(AuthMiddleware, keys=settings.api_keys)
    log = RequestLog(log_path, settings.log_content)
    app.add_middleware(RecordMiddleware, log=log, metrics=metrics)
    return app


class Routes:
    def __init__(
        self, pool: ModelPool, worker: GenerationWorker, settings: ServeSettings, metrics: Metrics
    ) -> None:
        self.pool = pool
        self.worker = worker
        self.settings = settings
        self._metrics = metrics

    async def list_models(self) -> dict[str, Any]:
        cards = [model_card(model_id, self.pool.created) for model_id in self.pool.ids()]
        return {"object": "list", "data": cards}

    async def get_model(self, model_id: str) -> dict[str, Any]:
        return model_card(self.pool.get(model_id).model_id, self.pool.created)

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "models": self.pool.ids()}

    async def metrics(self) -> Response:
        body, content_type = self._metrics.render()
        return Response(body, media_type=content_type)

    async def chat(self, body: ChatRequest, request: Request) -> Response:
        record: RequestRecord = request.state.record
        entry = self._entry(body.model, record)
        check_unsupported(body)
        messages = template_messages(body.messages)
        record.prompt, record.prompt_words = messages, prompt_words(messages)
        prompt = _chat_prompt(entry, messages)
        decoding = self._decoding(body, entry, [prompt])
        record.prompt_tokens = len(prompt)
        request_id = f"chatcmpl-{record.request_id}"
        if body.stream:
            return _sse(record, self._events(record, entry, prompt, decoding, body, request_id))
        [result] = await self.worker.complete(entry, [prompt], decoding, body.seed)
        record.completion_tokens, record.output = result.completion_tokens, result.text
        return JSONResponse(
            chat_completion(
                request_id,
                body.model,
                result.text,
                result.finish_reason,
                len(prompt),
                result.completion_tokens,
            )
        )

    async def completions(self, body: CompletionRequest, request: Request) -> Response:
        record: RequestRecord = request.state.record
        entry = self._entry(body.model, record)
        check_unsupported(body)
        texts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not texts or not all(text.strip() for text in texts):
            raise bad_request("prompt: must be non-empty text", param="prompt")
        if body.stream and len(texts) > 1:
            raise bad_request("prompt: streaming takes a single prompt", param="prompt")
        record.prompt = body.prompt
        record.prompt_words = sum(len(text.split()) for text in texts)
        # Plain text, no chat template; the tokenizer adds BOS if its model expects one.
        prompts = [list(entry.tokenizer(text)["input_ids"]) for text in texts]
        decoding = self._decoding(body, entry, prompts)
        record.prompt_tokens = sum(len(p) for p in prompts)
        request_id = f"cmpl-{record.request_id}"
        if body.stream:
            events = self._events(record, entry, prompts[0], decoding, body, request_id)
            return _sse(record, events)
        results = await self.worker.complete(entry, prompts, decoding, body.seed)
        record.completion_tokens = sum(r.completion_tokens for r in results)
        record.output = [r.text for r in results] if len(results) > 1 else results[0].text
        choices = [(r.text, r.finish_reason) for r in results]
        return JSONResponse(
            text_completion(
                request_id, body.model, choices, record.prompt_tokens, record.completion_tokens
            )
        )

    def _entry(self, model_id: str, record: RequestRecord) -> Entry:
        record.model = model_id
        entry = self.pool.get(model_id)
        record.served = True
        return entry

    def _decoding(
        self, body: ChatRequest | CompletionRequest, entry: Entry, prompts: list[list[int]]
    ) -> Decoding:
        """Decoding settings for the request, after checking its limits (400 when over)."""
        limit = self.settings.max_tokens
        asked = requested_max_tokens(body)
        chat_limit = isinstance(body, ChatRequest) and body.max_completion_tokens is not None
        param = "max_completion_tokens" if chat_limit else "max_tokens"
        if asked is not None and asked > limit:
            raise bad_request(
                f"{param} is {asked}, above this server's limit of {limit} (serve.max_tokens).",
                param=param,
            )
        longest = max(len(p) for p in prompts)
        if longest > self.settings.max_prompt_tokens:
            raise bad_request(
                f"The prompt is {longest} tokens; this server accepts at most "
                f"{self.settings.max_prompt_tokens} (serve.max_prompt_tokens).",
                param="messages" if isinstance(body, ChatRequest) else "prompt",
                code="context_length_exceeded",
            )
        new_tokens = asked or limit
        if entry.context is not None:
            room = entry.context - longest
            if room < 1 or (asked is not None and asked > room):
                raise bad_request(
                    f"The prompt ({longest} tokens) plus {param} ({new_tokens}) exceeds the "
                    f"model's context of {entry.context} tokens.",
                    param=param,
                    code="context_length_exceeded",
                )
            new_tokens = min(new_tokens, room)  # the default shrinks to fit
        if body.temperature == 0:  # greedy: sampling settings do not matter, so batch together
            return Decoding(max_new_tokens=new_tokens)
        return Decoding(
            max_new_tokens=new_tokens,
            do_sample=True,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed or 0,
        )

    async def _events(
        self,
        record: RequestRecord,
        entry: Entry,
        prompt: list[int],
        decoding: Decoding,
        body: ChatRequest | CompletionRequest,
        request_id: str,
    ) -> AsyncIterator[dict[str, Any]]:
        """OpenAI's stream: (chat: a role chunk), text chunks, a chunk with the finish_reason,
        and with `stream_options.include_usage` a last chunk holding the usage."""
        chat = isinstance(body, ChatRequest)

        def chunk(text: str | None, finish: str | None) -> dict[str, Any]:
            if chat:
                delta = {"content": text} if text is not None else {}
                return chat_chunk(request_id, body.model, delta, finish)
            return text_chunk(request_id, body.model, text or "", finish)

        if chat:
            yield chat_chunk(request_id, body.model, {"role": "assistant", "content": ""}, None)
        final = None
        pieces = self.worker.stream(entry, prompt, decoding, body.seed)
        async with contextlib.aclosing(pieces) as stream:
            async for item in stream:
                if isinstance(item, Generation):
                    final = item
                else:
                    yield chunk(item, None)
        assert final is not None, "the worker's stream ends with a Generation"
        record.completion_tokens, record.output = final.completion_tokens, final.text
        yield chunk(None, final.finish_reason)
        if body.stream_options and body.stream_options.include_usage:
            kind = "chat.completion.chunk" if chat else "text_completion"
            yield usage_chunk(request_id, body.model, kind, len(prompt), final.completion_tokens)


def _chat_prompt(entry: Entry, messages: list[dict[str, Any]]) -> list[int]:
    try:
        return prompt_ids(entry.tokenizer, messages)
    except ChatTemplateError as exc:
        raise bad_request(exc.message, param="messages") from exc


def _sse(record: RequestRecord, events: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """Server-sent events; an error after the stream started is sent as an `error` event (the
    status line is already out), which the openai SDK raises as an APIError."""

    async def lines() -> AsyncIterator[str]:
        async with contextlib.aclosing(events) as stream:
            try:
                async for event in stream:
                    yield _data(event)
            except (asyncio.CancelledError, GeneratorExit):  # generation stops with the stream
                record.error = "the client disconnected before the stream ended"
                raise
            except APIError as exc:
                record.error = exc.message
                yield _data(exc.body())
            except Exception as exc:
                logger.exception("streaming failed")
                record.error = f"internal error ({type(exc).__name__})"
                yield _data(APIError(500, record.error + "; see the server log").body())
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        lines(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _data(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
