"""Request bodies (validated by pydantic) and response objects in OpenAI's shapes.

Unknown fields are refused (`extra="forbid"`), so a parameter this server does not implement
fails with a 400 naming it instead of being silently ignored. Parameters that clients often send
with their "off" value (`n: 1`, `stop: null`, zero penalties) are accepted only with that value.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tunewright.serving.errors import bad_request

Role = Literal["system", "developer", "user", "assistant", "tool"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessage(_Body):
    role: Role
    content: str | list[dict[str, Any]] | None = None  # text, or OpenAI content parts
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class _Generation(_Body):
    """Fields shared by chat and plain completions."""

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, gt=0)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None  # accepted for compatibility; not used
    # Accepted only with the value that switches them off (see `check_unsupported`).
    n: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | int | None = None


class ChatRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, gt=0)


class CompletionRequest(_Generation):
    prompt: str | list[str]


_OFF_VALUES: dict[str, tuple[Any, ...]] = {
    "n": (None, 1),
    "stop": (None, "", []),
    "presence_penalty": (None, 0),
    "frequency_penalty": (None, 0),
    "logprobs": (None, False, 0),
}


def check_unsupported(body: _Generation) -> None:
    for name, off in _OFF_VALUES.items():
        value = getattr(body, name)
        if value not in off:
            raise bad_request(
                f"{name}={value!r} is not supported by this server (leave it unset)", param=name
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
        for key in ("name", "tool_calls", "tool_call_id"):
            if getattr(message, key) is not None:
                item[key] = getattr(message, key)
        out.append(item)
    return out


def _part_text(part: dict[str, Any], where: str) -> str:
    if part.get("type") != "text" or not isinstance(part.get("text"), str):
        raise bad_request(
            f"{where}: only text parts ({{'type': 'text', 'text': ...}}) are supported, "
            f"got type {part.get('type')!r}",
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


def chat_completion(
    request_id: str, model: str, text: str, finish: str, prompt_tokens: int, completion: int
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage(prompt_tokens, completion),
    }


def chat_chunk(
    request_id: str, model: str, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def text_completion(
    request_id: str,
    model: str,
    choices: list[tuple[str, str]],
    prompt_tokens: int,
    completion: int,
) -> dict[str, Any]:
    """`choices`: (text, finish_reason) per prompt, in order."""
    return {
        "id": request_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": i, "text": text, "logprobs": None, "finish_reason": finish}
            for i, (text, finish) in enumerate(choices)
        ],
        "usage": usage(prompt_tokens, completion),
    }


def text_chunk(request_id: str, model: str, text: str, finish: str | None) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
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
