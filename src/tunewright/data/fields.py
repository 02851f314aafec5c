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


# Where a content part keeps its text, first match wins: OpenAI's key, then other trainers'.
PART_TEXT_KEYS = ("text", "value", "content")
# A message's loss weight: OpenAI's key, and the one some trainers write instead.
WEIGHT_KEYS = ("weight", "loss_weight")


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
    """Message content: a string, or a list of text parts. A part holds its text under `text`
    (OpenAI), `value` or `content` (as other trainers write them); any other part is refused
    with the field and the keys it has, never read as empty."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_part_text(part, f"{where}[{n}]") for n, part in enumerate(content))
    raise RowError(f"{where} must be text, got {type(content).__name__}")


def _part_text(part: Any, where: str) -> str:
    if not isinstance(part, dict):
        raise RowError(f"{where} must be an object, got {type(part).__name__}")
    kind = part.get("type", "text")  # a part without a type is read as text
    if kind != "text":
        raise RowError(f"{where}: only text parts are supported, got {kind!r}")
    key = next((k for k in PART_TEXT_KEYS if k in part), None)
    if key is None:
        keys = ", ".join(str(k) for k in part)
        raise RowError(f"{where} has no text field (keys: {keys})")
    if not isinstance(part[key], str):
        raise RowError(f"{where}.{key} must be text, got {type(part[key]).__name__}")
    return part[key]


def message_weight(message: dict[str, Any], where: str) -> int | None:
    """A message's loss weight, 0 or 1, from OpenAI's `weight` or the `loss_weight` some
    trainers write; None when it has neither. Anything else is refused: chat.py trains every
    weight but 0, so a "0" or 0.5 read as it is would train what the writer meant to mask."""
    keys = [k for k in WEIGHT_KEYS if message.get(k) is not None]
    if not keys:
        return None
    values = {k: message[k] for k in keys}
    for key, value in values.items():
        if isinstance(value, str) or value not in (0, 1):
            raise RowError(f"{where}.{key} must be 0 or 1, got {value!r}")
    if len({int(v) for v in values.values()}) > 1:
        raise RowError(f"{where}: weight and loss_weight disagree ({values})")
    return int(values[keys[0]])


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
        clean = {k: v for k, v in message.items() if v is not None and k not in WEIGHT_KEYS}
        clean["content"] = content_text(message.get("content"), f"{key}[{i}].content")
        weight = message_weight(message, f"{key}[{i}]")
        if weight is not None:
            clean["weight"] = weight
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
        value = turn.get("value")
        # A list is content parts (read as OpenAI's); other values keep their text, as before.
        if isinstance(value, list):
            value = content_text(value, f"{key}[{i}].value")
        value = "" if value is None else str(value)
        if turn["from"] == "function_call":
            messages.append(_function_call_message(value, key, i))
        else:
            messages.append({"role": role, "content": value})
        weight = message_weight(turn, f"{key}[{i}]")
        if weight is not None:  # per-turn weights, as some sharegpt writers add them
            messages[-1]["weight"] = weight
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
