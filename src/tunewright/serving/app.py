"""The FastAPI app: OpenAI-compatible routes over one ModelPool and its generation worker.

Each generating route reads top to bottom: find the model (404), check the parameters and the
per-request limits (400), render the prompt with that model's template (and tools), compile a
grammar when the output is constrained, then queue one job per choice (429 when the queue is
full) and either await the results or stream them as server-sent events in OpenAI's chunk
format, ending with `data: [DONE]`. While a request waits it is watched: past
serve.request_timeout_s before generation starts it is answered 503, and when its client
disconnects its generation stops. Streams that need the whole answer first (tool calls,
logprobs, several choices) are generated, then sent as a few chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.types import Receive

from tunewright import __version__
from tunewright.chat import ChatTemplateError, prompt_ids
from tunewright.generate import Decoding
from tunewright.request_log import RequestRecord
from tunewright.serving import errors, grammar
from tunewright.serving.errors import APIError, bad_request
from tunewright.serving.logprobs import chat_logprobs, completion_logprobs
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
    chat_choice,
    chat_chunk,
    chat_completion,
    check_unsupported,
    model_card,
    requested_max_tokens,
    template_messages,
    text_choice,
    text_chunk,
    text_completion,
    usage_chunk,
)
from tunewright.serving.tools import parse_tool_calls, prompt_with_tools
from tunewright.serving.worker import Generation, GenerationWorker, Job, Params, cancel

logger = logging.getLogger("tunewright.serve")
T = TypeVar("T")


@dataclass(frozen=True)
class ServeSettings:
    api_keys: tuple[str, ...] = ()  # empty: no authentication
    max_prompt_tokens: int = 2048
    max_tokens: int = 512  # largest max_tokens a request may ask for; also the default
    log_content: bool = False
    # Requests generated together. 32 clients on 2 CPU cores (bench/serve_load.py,
    # SmolLM2-135M, 16 tokens): 5.6 requests/s at 8, 8.3 at 16, 8.7 at 32 (p50 5.7, 3.8, 3.7 s).
    batch_size: int = 16
    max_body_bytes: int = 1 << 20  # 1 MiB holds ~250k tokens of text, far above any prompt limit
    docs: bool = False  # /docs, /redoc and /openapi.json
    metrics_key: str | None = None  # the key /metrics takes; None: the API keys
    max_queue: int = 128  # generations waiting; beyond: 429
    request_timeout_s: float = 60.0  # wait before generation starts; beyond: 503
    max_messages: int = 256
    max_choices: int = 16  # generations one request may ask for: prompts x n


def build_app(pool: ModelPool, settings: ServeSettings, log_path: Path | None) -> FastAPI:
    metrics = Metrics()
    worker = GenerationWorker(pool, settings.batch_size, metrics, settings.max_queue)
    routes = Routes(pool, worker, settings, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    docs = settings.docs  # off by default: the schema maps the attack surface for anyone
    app = FastAPI(
        title="tunewright",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
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
    app.add_middleware(AuthMiddleware, keys=settings.api_keys, metrics_key=settings.metrics_key)
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
        deadline = self._deadline()
        record: RequestRecord = request.state.record
        entry = self._entry(body.model, record)
        check_unsupported(body)
        self._check_counts(len(body.messages), 1, body.n)
        messages = template_messages(body.messages)
        record.prompt, record.prompt_words = messages, prompt_words(messages)
        tools, forced = _offered_tools(body)
        prompt = _chat_prompt(entry, messages, tools)
        params = self._params(body, entry, [prompt], _chat_grammar(body, entry, forced))
        record.prompt_tokens = len(prompt)
        request_id = f"chatcmpl-{record.request_id}"
        names = {tool["function"]["name"] for tool in tools or []}
        if body.stream and body.n == 1 and not names and params.top_logprobs is None:
            [job] = await self._start_stream(request, entry, prompt, params, deadline)
            return _sse(record, self._chat_events(record, job, body, request_id))
        results = await self._generate(request, entry, [prompt] * body.n, params, deadline)
        record.completion_tokens = sum(r.completion_tokens for r in results)
        record.output = [r.text for r in results] if len(results) > 1 else results[0].text
        choices = [_chat_choice(i, r, names) for i, r in enumerate(results)]
        if body.stream:
            events = _chat_choice_events(request_id, body, choices, len(prompt), results)
            return _sse(record, events)
        reply = chat_completion(
            request_id, body.model, choices, len(prompt), record.completion_tokens
        )
        return JSONResponse(reply)

    async def completions(self, body: CompletionRequest, request: Request) -> Response:
        deadline = self._deadline()
        record: RequestRecord = request.state.record
        entry = self._entry(body.model, record)
        check_unsupported(body)
        texts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not texts or not all(text.strip() for text in texts):
            raise bad_request("prompt: must be non-empty text", param="prompt")
        self._check_counts(0, len(texts), body.n)
        if body.stream and len(texts) > 1:
            raise bad_request("prompt: streaming takes a single prompt", param="prompt")
        record.prompt = body.prompt
        record.prompt_words = sum(len(text.split()) for text in texts)
        # Plain text, no chat template; the tokenizer adds BOS if its model expects one.
        prompts = [list(entry.tokenizer(text)["input_ids"]) for text in texts]
        params = self._params(body, entry, prompts, None)
        record.prompt_tokens = sum(len(p) for p in prompts)
        request_id = f"cmpl-{record.request_id}"
        if body.stream and body.n == 1 and params.top_logprobs is None:
            [job] = await self._start_stream(request, entry, prompts[0], params, deadline)
            return _sse(record, self._text_events(record, job, body, request_id))
        # OpenAI's order: the n choices of the first prompt, then those of the next.
        asked = [prompt for prompt in prompts for _ in range(body.n)]
        results = await self._generate(request, entry, asked, params, deadline)
        record.completion_tokens = sum(r.completion_tokens for r in results)
        record.output = [r.text for r in results] if len(results) > 1 else results[0].text
        choices = [
            text_choice(i, r.text, r.finish_reason, _completion_logprobs(r))
            for i, r in enumerate(results)
        ]
        if body.stream:
            return _sse(record, _text_choice_events(request_id, body, choices, record))
        reply = text_completion(
            request_id, body.model, choices, record.prompt_tokens, record.completion_tokens
        )
        return JSONResponse(reply)

    # --- checks ------------------------------------------------------------------------------

    def _entry(self, model_id: str, record: RequestRecord) -> Entry:
        entry = self.pool.get(model_id)
        # Only served names reach the log: a client's made-up name is request content.
        record.model, record.served = entry.model_id, True
        return entry

    def _check_counts(self, messages: int, prompts: int, n: int) -> None:
        if messages > self.settings.max_messages:
            raise bad_request(
                f"messages: {messages} messages; this server accepts at most "
                f"{self.settings.max_messages} (serve.max_messages).",
                param="messages",
            )
        choices = max(prompts, 1) * n
        if choices > self.settings.max_choices:
            raise bad_request(
                f"n: this request asks for {choices} generations (prompts x n); this server "
                f"generates at most {self.settings.max_choices} per request "
                "(serve.max_choices).",
                param="n" if n > 1 else "prompt",
            )

    def _params(
        self,
        body: ChatRequest | CompletionRequest,
        entry: Entry,
        prompts: list[list[int]],
        constraint: Any,
    ) -> Params:
        """What to generate, after checking the request's limits (400 when over)."""
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
            decoding = Decoding(max_new_tokens=new_tokens)
        else:
            decoding = Decoding(
                max_new_tokens=new_tokens,
                do_sample=True,
                temperature=body.temperature,
                top_p=body.top_p,
                seed=body.seed or 0,
            )
        return Params(
            decoding,
            seed=body.seed,
            stop=body.stop_strings(),
            grammar=constraint,
            top_logprobs=body.top_logprobs_wanted(),
        )

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.settings.request_timeout_s

    # --- waiting for the worker --------------------------------------------------------------

    async def _generate(
        self,
        request: Request,
        entry: Entry,
        prompts: list[list[int]],
        params: Params,
        deadline: float,
    ) -> list[Generation]:
        jobs = self.worker.submit(entry, prompts, params)

        async def finished() -> list[Generation]:
            await self.worker.wait_started(jobs, deadline)
            return await self.worker.results(jobs)

        try:
            return await _unless_disconnected(request.receive, finished())
        finally:
            cancel(jobs)  # no-op for finished jobs; the rest stop at their next step

    async def _start_stream(
        self, request: Request, entry: Entry, prompt: list[int], params: Params, deadline: float
    ) -> list[Job]:
        """Queues a streaming job and waits until it runs, so a refusal (429, 503) is still
        an HTTP status rather than an event inside a 200 stream."""
        jobs = self.worker.submit(entry, [prompt], params, stream=True)
        try:
            await _unless_disconnected(request.receive, self.worker.wait_started(jobs, deadline))
        except BaseException:
            cancel(jobs)
            raise
        return jobs

    async def _chat_events(
        self, record: RequestRecord, job: Job, body: ChatRequest, request_id: str
    ) -> AsyncIterator[dict[str, Any]]:
        """OpenAI's chat stream: a role chunk, text chunks, a chunk with the finish_reason,
        and with `stream_options.include_usage` a last chunk holding the usage."""
        yield chat_chunk(request_id, body.model, {"role": "assistant", "content": ""}, None)
        final = None
        async with contextlib.aclosing(self.worker.pieces(job)) as stream:
            async for item in stream:
                if isinstance(item, Generation):
                    final = item
                else:
                    yield chat_chunk(request_id, body.model, {"content": item}, None)
        assert final is not None, "the worker's stream ends with a Generation"
        record.completion_tokens, record.output = final.completion_tokens, final.text
        yield chat_chunk(request_id, body.model, {}, final.finish_reason)
        if body.stream_options and body.stream_options.include_usage:
            yield usage_chunk(
                request_id,
                body.model,
                "chat.completion.chunk",
                record.prompt_tokens,
                final.completion_tokens,
            )

    async def _text_events(
        self, record: RequestRecord, job: Job, body: CompletionRequest, request_id: str
    ) -> AsyncIterator[dict[str, Any]]:
        final = None
        async with contextlib.aclosing(self.worker.pieces(job)) as stream:
            async for item in stream:
                if isinstance(item, Generation):
                    final = item
                else:
                    yield text_chunk(request_id, body.model, item, None)
        assert final is not None, "the worker's stream ends with a Generation"
        record.completion_tokens, record.output = final.completion_tokens, final.text
        yield text_chunk(request_id, body.model, "", final.finish_reason)
        if body.stream_options and body.stream_options.include_usage:
            yield usage_chunk(
                request_id,
                body.model,
                "text_completion",
                record.prompt_tokens,
                final.completion_tokens,
            )


async def _unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """`work`'s result, unless the client disconnects first: then 499 (nobody reads it) and
    `work` is cancelled."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
    if task in done:
        return task.result()
    raise APIError(499, "The client disconnected before the answer was ready.")


async def _disconnected(receive: Receive) -> None:
    # The body has been read, so the next message is the disconnect (or the end of the
    # response, when this watch is already cancelled).
    while (await receive())["type"] != "http.disconnect":
        pass


def _offered_tools(body: ChatRequest) -> tuple[list[dict[str, Any]] | None, list[dict] | None]:
    """(tools to render, functions a call is forced to) for the request's tools/tool_choice."""
    if not body.tools or body.tool_choice == "none":
        if body.tool_choice not in (None, "none", "auto"):
            raise bad_request("tool_choice: needs tools", param="tool_choice")
        return None, None
    tools = [tool.model_dump(exclude_none=True) for tool in body.tools]
    functions = [tool["function"] for tool in tools]
    choice = body.tool_choice
    if choice in (None, "auto"):
        return tools, None
    if choice == "required":
        return tools, functions
    assert choice is not None and not isinstance(choice, str)
    named = [f for f in functions if f["name"] == choice.function.name]
    if not named:
        raise bad_request(
            "tool_choice: names a function that is not among tools", param="tool_choice"
        )
    return tools, named


def _chat_grammar(body: ChatRequest, entry: Entry, forced: list[dict] | None) -> Any:
    kind = body.response_format.type if body.response_format else "text"
    if forced is not None:
        if kind != "text":
            raise bad_request(
                "response_format: cannot be combined with a forced tool call (tool_choice)",
                param="response_format",
            )
        return grammar.tool_call_grammar(entry, forced)
    if kind == "json_object":
        return grammar.json_object_grammar(entry)
    if kind == "json_schema":
        assert body.response_format is not None
        spec = body.response_format.json_schema
        if spec is None:
            raise bad_request(
                "response_format.json_schema: required with type json_schema",
                param="response_format.json_schema",
            )
        return grammar.json_schema_grammar(entry, spec.schema_)
    return None


def _chat_prompt(
    entry: Entry, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> list[int]:
    try:
        if tools:
            return prompt_with_tools(entry.tokenizer, messages, tools)
        return prompt_ids(entry.tokenizer, messages)
    except ChatTemplateError:
        # Not the template's message: it quotes the conversation.
        raise bad_request(
            "messages: the model's chat template cannot render this conversation "
            "(check the roles and their order)",
            param="messages",
        ) from None


def _chat_choice(index: int, result: Generation, names: set[str]) -> dict[str, Any]:
    logprobs = chat_logprobs(result.logprobs) if result.logprobs is not None else None
    content, calls = parse_tool_calls(result.text, names) if names else (result.text, [])
    finish = "tool_calls" if calls and result.finish_reason == "stop" else result.finish_reason
    return chat_choice(index, content, finish, logprobs, calls or None)


def _completion_logprobs(result: Generation) -> dict[str, Any] | None:
    return completion_logprobs(result.logprobs) if result.logprobs is not None else None


async def _chat_choice_events(
    request_id: str,
    body: ChatRequest,
    choices: list[dict[str, Any]],
    prompt_tokens: int,
    results: list[Generation],
) -> AsyncIterator[dict[str, Any]]:
    """Finished chat choices as a stream: per choice a role+content chunk (with tool calls and
    logprobs), then its finish_reason chunk."""
    for choice in choices:
        message = choice["message"]
        delta: dict[str, Any] = {"role": "assistant", "content": message["content"]}
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {"index": k, **call} for k, call in enumerate(message["tool_calls"])
            ]
        logprobs = (choice["logprobs"] or {}).get("content")
        for event in (
            chat_chunk(request_id, body.model, delta, None, logprobs),
            chat_chunk(request_id, body.model, {}, choice["finish_reason"]),
        ):
            event["choices"][0]["index"] = choice["index"]
            yield event
    if body.stream_options and body.stream_options.include_usage:
        completion = sum(r.completion_tokens for r in results)
        yield usage_chunk(
            request_id, body.model, "chat.completion.chunk", prompt_tokens, completion
        )


async def _text_choice_events(
    request_id: str, body: CompletionRequest, choices: list[dict[str, Any]], record: RequestRecord
) -> AsyncIterator[dict[str, Any]]:
    for choice in choices:
        yield {**text_chunk(request_id, body.model, "", None), "choices": [choice]}
    if body.stream_options and body.stream_options.include_usage:
        yield usage_chunk(
            request_id,
            body.model,
            "text_completion",
            record.prompt_tokens,
            record.completion_tokens,
        )


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
