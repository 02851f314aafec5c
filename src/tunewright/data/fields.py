"""Reading the fields of a raw row: text, nested JSON and message lists in OpenAI or sharegpt
style. `normalize` (one record per format) and `pairs` (preference and feedback shapes) share
them, so a field reads the same, and fails with the same message, in every format.
"""

from __future__ import annotations

import json
from typing import Any

from tunewright.data.load import JSONLimitError, parse_json
from tunewright.data.records import ROLES

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "observation": "tool",
    "tool": "tool",
    "function_call": "assistant",
}


class RowError(ValueError):
    """A row that does not fit its format; the message names the field."""


def text_field(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise RowError(f"field '{key}' must be text, got {type(value).__name__}")
    return str(value)


def nested_field(row: dict[str, Any], key: str) -> Any:
    """Nested fields may arrive as JSON text (CSV cells cannot hold lists)."""
    value = row.get(key)
    if isinstance(value, str) and value.lstrip().startswith(("[", "{")):
        try:
            return parse_json(value)
        except json.JSONDecodeError as exc:
            raise RowError(f"field '{key}' is not valid JSON: {exc.msg}") from None
        except JSONLimitError as exc:
            raise RowError(f"field '{key}' is unreadable JSON: {exc}") from None
    return value


def content_text(content: Any, where: str) -> str:
    """OpenAI content: a string, or a list of parts of which only text parts are supported."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RowError(f"{where}: only text parts are supported, got {kind!r}")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise RowError(f"{where} must be text, got {type(content).__name__}")


def tools_field(value: Any) -> list[Any] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        try:
            value = parse_json(value)
        except json.JSONDecodeError as exc:
            raise RowError(f"field 'tools' is not valid JSON: {exc.msg}") from None
        except JSONLimitError as exc:
            raise RowError(f"field 'tools' is unreadable JSON: {exc}") from None
    if not isinstance(value, list):
        raise RowError("field 'tools' must be a list of tool schemas")
    return value


def openai_messages(raw: Any, key: str) -> list[dict[str, Any]]:
    """A list of {"role", "content", ...} objects, cleaned: no None values, content as text."""
    if not isinstance(raw, list):
        raise RowError(f"field '{key}' must be a list, got {type(raw).__name__}")
    messages = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise RowError(f"{key}[{i}] must be an object, got {type(message).__name__}")
        if message.get("role") not in ROLES:
            raise RowError(f"{key}[{i}].role: unknown role {message.get('role')!r}")
        clean = {k: v for k, v in message.items() if v is not None}
        clean["content"] = content_text(message.get("content"), f"{key}[{i}].content")
        messages.append(clean)
    return messages


def sharegpt_messages(turns: Any, key: str) -> list[dict[str, Any]]:
    """A list of {"from", "value"} turns as OpenAI messages; function calls as tool calls."""
    if not isinstance(turns, list):
        raise RowError(f"field '{key}' must be a list")
    messages: list[dict[str, Any]] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn:
            raise RowError(f"{key}[{i}] needs 'from' and 'value'")
        role = SHAREGPT_ROLES.get(str(turn["from"]))
        if role is None:
            raise RowError(f"{key}[{i}].from: unknown speaker {turn['from']!r}")
        value = "" if turn.get("value") is None else str(turn["value"])
        if turn["from"] == "function_call":
            messages.append(_function_call_message(value, key, i))
        else:
            messages.append({"role": role, "content": value})
    return messages


def any_messages(raw: Any, key: str) -> list[dict[str, Any]]:
    """Messages in either style: sharegpt when every item has a 'from', else OpenAI."""
    if isinstance(raw, list) and raw and all(isinstance(m, dict) and "from" in m for m in raw):
        return sharegpt_messages(raw, key)
    return openai_messages(raw, key)


def _function_call_message(value: str, key: str, index: int) -> dict[str, Any]:
    """sharegpt `function_call` turns hold {"name", "arguments"} JSON; OpenAI tool-call form
    keeps arguments as a JSON string, exactly as written, so invalid JSON stays visible."""
    try:
        call = parse_json(value)
    except json.JSONDecodeError as exc:
        raise RowError(f"{key}[{index}].value: function call is not JSON: {exc.msg}") from None
    except JSONLimitError as exc:
        raise RowError(f"{key}[{index}].value: function call is unreadable: {exc}") from None
    if not isinstance(call, dict) or "name" not in call:
        raise RowError(f"{key}[{index}].value: function call needs a 'name'")
    arguments = call.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": call["name"], "arguments": arguments},
            }
        ],
    }
