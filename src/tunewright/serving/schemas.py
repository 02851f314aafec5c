"""Request bodies (validated by pydantic) and response objects in OpenAI's shapes.

Unknown fields are refused (`extra="forbid"`), so a parameter this server does not implement
fails with a 400 naming it instead of being silently ignored. Parameters that clients often send
with their "off" value (zero penalties) are accepted only with that value. Every value a client
can send is checked here, so nothing reaches the tokenizer or torch that they would fail on:
text must be valid Unicode (JSON can carry lone UTF-16 surrogates, which no tokenizer encodes)
and a seed must fit torch's 64-bit generator.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from tunewright.serving.errors import bad_request

Role = Literal["system", "developer", "user", "assistant", "tool"]
MAX_STOPS = 4  # as OpenAI
MAX_TOP_LOGPROBS = 20  # as OpenAI's chat API; its legacy completions API allows 5


def _valid_unicode(value: Any) -> Any:
    """Refuses text (keys too, at any depth) that cannot be encoded as UTF-8."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text is not valid Unicode (it holds a lone surrogate)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _valid_unicode(key)
            _valid_unicode(item)
    elif isinstance(value, list):
        for item in value:
            _valid_unicode(item)
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]
JSONObject = Annotated[dict[str, Any], AfterValidator(_valid_unicode)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CalledFunction(_Body):
    name: Text
    arguments: Text  # JSON text, as OpenAI sends it


class ToolCall(_Body):
    id: Text | None = None
    type: Literal["function"] = "function"
    function: CalledFunction


class ChatMessage(_Body):
    role: Role
    content: Text | list[JSONObject] | None = None  # text, or OpenAI content parts
    name: Text | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: Text | None = None
    refusal: Text | None = None  # sent back by clients that replay assistant turns; not used


class StreamOptions(_Body):
    include_usage: bool = False


class FunctionSpec(_Body):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
    description: Text | None = None
    parameters: JSONObject | None = None  # a JSON schema; none: no arguments
    strict: bool | None = None


class Tool(_Body):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(_Body):
    name: Text


class ToolChoiceFunction(_Body):
    type: Literal["function"]
    function: NamedFunction


class JSONSchemaFormat(_Body):
    name: Text = Field(max_length=64)
    description: Text | None = None
    schema_: JSONObject = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class _Generation(_Body):
    """Fields shared by chat and plain completions."""

    model: Text = Field(min_length=1)
    max_tokens: int | None = Field(None, gt=0)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)  # torch's generator takes 64 bits
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: Text | None = None  # accepted for compatibility; not used
    n: int = Field(1, ge=1, le=128)  # the server's own limit is serve.max_choices
    stop: Text | list[Text] | None = None
    # Accepted only with the value that switches them off (see `check_unsupported`).
    presence_penalty: float | None = None
    frequency_penalty: float | None = None

    def stop_strings(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else self.stop or []
        if len(stops) > MAX_STOPS:
            raise bad_request(f"stop: at most {MAX_STOPS} sequences", param="stop")
        return tuple(s for s in stops if s)


class ChatRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, gt=0)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = None
    parallel_tool_calls: bool | None = None  # accepted; one call per turn is what is enforced

    def top_logprobs_wanted(self) -> int | None:
        """How many alternatives per token to return; None: no logprobs at all."""
        if not self.logprobs:
            if self.top_logprobs:
                raise bad_request("top_logprobs: needs logprobs: true", param="top_logprobs")
            return None
        return self.top_logprobs or 0


class CompletionRequest(_Generation):
    prompt: Text | list[Text]
    logprobs: int | None = Field(None, ge=0, le=5)  # the legacy API: alternatives per token

    def top_logprobs_wanted(self) -> int | None:
        return self.logprobs


_OFF_VALUES: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
}


def check_unsupported(body: _Generation) -> None:
    for name, off in _OFF_VALUES.items():
        if getattr(body, name) not in off:
            # The value is not echoed: error messages never repeat request content.
            raise bad_request(
                f"{name} is not supported by this server (leave it unset)", param=name
            )


def requested_max_tokens(body: _Generation) -> int | None:
    if isinstance(body, ChatRequest) and body.max_completion_tokens is not None:
        return body.max_completion_tokens
    return body.max_tokens


def template_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as `chat.prompt_ids` takes them: text content, `developer` read as `system`."""
    out = []
    for index, message in enumerate(messages):
        content = message.content
        if isinstance(content, list):
            content = "".join(
                _part_text(part, f"messages[{index}].content[{k}]")
                for k, part in enumerate(content)
            )
        if content is None and not (message.role == "assistant" and message.tool_calls):
            raise bad_request(
                f"messages[{index}].content: required for a {message.role} message",
                param=f"messages[{index}].content",
            )
        item: dict[str, Any] = {
            "role": "system" if message.role == "developer" else message.role,
            "content": content or "",
        }
        for key in ("name", "tool_call_id"):
            if getattr(message, key) is not None:
                item[key] = getattr(message, key)
        if message.tool_calls:
            item["tool_calls"] = [call.model_dump() for call in message.tool_calls]
        out.append(item)
    return out


def _part_text(part: dict[str, Any], where: str) -> str:
    if part.get("type") != "text" or not isinstance(part.get("text"), str):
        raise bad_request(
            f"{where}: only text parts ({{'type': 'text', 'text': ...}}) are supported",
            param=where,
        )
    return part["text"]


# --- responses -------------------------------------------------------------------------------


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_choice(
    index: int,
    text: str | None,
    finish: str,
    logprobs: list[dict[str, Any]] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "index": index,
        "message": message,
        "logprobs": {"content": logprobs} if logprobs is not None else None,
        "finish_reason": finish,
    }


def chat_completion(
    request_id: str,
    model: str,
    choices: list[dict[str, Any]],
    prompt_tokens: int,
    completion: int,
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(prompt_tokens, completion),
    }


def chat_chunk(
    request_id: str,
    model: str,
    delta: dict[str, Any],
    finish: str | None,
    logprobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "logprobs": {"content": logprobs} if logprobs is not None else None,
                "finish_reason": finish,
            }
        ],
    }


def text_choice(
    index: int, text: str, finish: str, logprobs: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}


def text_completion(
    request_id: str,
    model: str,
    choices: list[dict[str, Any]],
    prompt_tokens: int,
    completion: int,
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(prompt_tokens, completion),
    }


def text_chunk(request_id: str, model: str, text: str, finish: str | None) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [text_choice(0, text, finish)],  # type: ignore[arg-type]
    }


def usage_chunk(request_id: str, model: str, obj: str, prompt: int, completion: int) -> dict:
    """The last chunk when `stream_options.include_usage` is set: no choices, the usage."""
    return {
        "id": request_id,
        "object": obj,
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage(prompt, completion),
    }


def model_card(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "tunewright"}
