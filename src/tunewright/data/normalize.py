"""Turning raw rows of any supported format into canonical records (see `records.py`).

Each format is detected from a row's columns (after the user's column map) or declared in
`data.format`. A row that does not fit its format is not guessed at: `normalize_row` raises
`RowError` with the field at fault, and the caller rejects the row with that reason.
"""

from __future__ import annotations

import json
from typing import Any

from tunewright.data.load import JSONLimitError, parse_json
from tunewright.data.records import ROLES, Record, make_record

# Fields each format needs (required) and may have (optional), in the format's own names.
FORMATS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "openai": (("messages",), ("tools",)),
    "sharegpt": (("conversations",), ("tools", "system")),
    "alpaca": (("instruction", "output"), ("input", "system", "history")),
    "preference": (("prompt", "chosen", "rejected"), ()),
    "code": (("prompt", "completion"), ()),
    "classification": (("text", "label"), ()),
    "summarization": (("document", "summary"), ()),
    "text": (("text",), ()),
}
# Detection order matters: `text` alone is the fallback for rows that are not classification.
DETECTION_ORDER = (
    "openai",
    "sharegpt",
    "alpaca",
    "preference",
    "code",
    "classification",
    "summarization",
    "text",
)
DEFAULT_TASK = {
    "openai": "chat",
    "sharegpt": "chat",
    "alpaca": "instruction",
    "preference": "preference",
    "code": "code",
    "classification": "classification",
    "summarization": "summarization",
    "text": "text",
}
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
SUMMARIZE_PROMPT = "Summarize the following document.\n\n"


class RowError(ValueError):
    """A row that does not fit its format; the message names the field."""


def apply_columns(row: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """Rename the user's columns to the format's names (`columns` maps ours -> theirs)."""
    if not columns:
        return row
    renamed = dict(row)
    for ours, theirs in columns.items():
        if theirs in renamed:
            renamed[ours] = renamed.pop(theirs)
    return renamed


def detect_format(row: dict[str, Any]) -> str | None:
    keys = set(row)
    for name in DETECTION_ORDER:
        if set(FORMATS[name][0]) <= keys:
            return name
    return None


def normalize_row(
    row: dict[str, Any],
    fmt: str,
    file: str,
    line: int,
    *,
    task: str = "auto",
    system_prompt: str | None = None,
) -> Record:
    """One raw row (already column-mapped) in format `fmt` -> a canonical record."""
    for key in FORMATS[fmt][0]:
        if key not in row or row[key] is None:
            raise RowError(f"missing field '{key}' (format {fmt})")
    builder = _BUILDERS[fmt]
    record = builder(row, file, line)
    record["task"] = DEFAULT_TASK[fmt] if task == "auto" else task
    messages = record["messages"]
    if system_prompt and not any(m["role"] == "system" for m in messages) and fmt != "text":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return record


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise RowError(f"field '{key}' must be text, got {type(value).__name__}")
    return str(value)


def _nested(row: dict[str, Any], key: str) -> Any:
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


def _from_openai(row: dict[str, Any], file: str, line: int) -> Record:
    raw = _nested(row, "messages")
    if not isinstance(raw, list):
        raise RowError(f"field 'messages' must be a list, got {type(raw).__name__}")
    messages = []
    for i, message in enumerate(raw):
        if not isinstance(message, dict):
            raise RowError(f"messages[{i}] must be an object, got {type(message).__name__}")
        if message.get("role") not in ROLES:
            raise RowError(f"messages[{i}].role: unknown role {message.get('role')!r}")
        clean = {k: v for k, v in message.items() if v is not None}
        clean["content"] = _content_text(message.get("content"), f"messages[{i}].content")
        messages.append(clean)
    return make_record(messages, "chat", file, line, tools=_tools(row.get("tools")))


def _content_text(content: Any, where: str) -> str:
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


def _tools(value: Any) -> list[Any] | None:
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


def _from_sharegpt(row: dict[str, Any], file: str, line: int) -> Record:
    turns = _nested(row, "conversations")
    if not isinstance(turns, list):
        raise RowError("field 'conversations' must be a list")
    messages: list[dict[str, Any]] = []
    if row.get("system"):
        messages.append({"role": "system", "content": _text(row, "system")})
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn:
            raise RowError(f"conversations[{i}] needs 'from' and 'value'")
        role = SHAREGPT_ROLES.get(str(turn["from"]))
        if role is None:
            raise RowError(f"conversations[{i}].from: unknown speaker {turn['from']!r}")
        value = "" if turn.get("value") is None else str(turn["value"])
        if turn["from"] == "function_call":
            messages.append(_function_call_message(value, i))
        else:
            messages.append({"role": role, "content": value})
    return make_record(messages, "chat", file, line, tools=_tools(row.get("tools")))


def _function_call_message(value: str, index: int) -> dict[str, Any]:
    """sharegpt `function_call` turns hold {"name", "arguments"} JSON; OpenAI tool-call form
    keeps arguments as a JSON string, exactly as written, so invalid JSON stays visible."""
    try:
        call = parse_json(value)
    except json.JSONDecodeError as exc:
        raise RowError(
            f"conversations[{index}].value: function call is not JSON: {exc.msg}"
        ) from None
    except JSONLimitError as exc:
        raise RowError(
            f"conversations[{index}].value: function call is unreadable: {exc}"
        ) from None
    if not isinstance(call, dict) or "name" not in call:
        raise RowError(f"conversations[{index}].value: function call needs a 'name'")
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


def _from_alpaca(row: dict[str, Any], file: str, line: int) -> Record:
    messages: list[dict[str, Any]] = []
    if row.get("system"):
        messages.append({"role": "system", "content": _text(row, "system")})
    history = _nested(row, "history") or []
    if not isinstance(history, list):
        raise RowError("field 'history' must be a list of [instruction, response] pairs")
    for i, pair in enumerate(history):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise RowError(f"history[{i}] must be an [instruction, response] pair")
        messages += [
            {"role": "user", "content": str(pair[0])},
            {"role": "assistant", "content": str(pair[1])},
        ]
    prompt = _text(row, "instruction")
    if _text(row, "input").strip():
        prompt = f"{prompt}\n\n{_text(row, 'input')}" if prompt else _text(row, "input")
    messages += [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": _text(row, "output")},
    ]
    return make_record(messages, "instruction", file, line)


def _from_preference(row: dict[str, Any], file: str, line: int) -> Record:
    prompt = _nested(row, "prompt")
    if isinstance(prompt, list):
        messages = _from_openai({"messages": prompt}, file, line)["messages"]
    else:
        messages = [{"role": "user", "content": _text(row, "prompt")}]
    chosen, rejected = _answer(row, "chosen"), _answer(row, "rejected")
    return make_record(messages, "preference", file, line, chosen=chosen, rejected=rejected)


def _answer(row: dict[str, Any], key: str) -> str:
    """Preference answers: text, or a message list whose last assistant message is the answer."""
    value = _nested(row, key)
    if isinstance(value, list):
        answers = [m for m in value if isinstance(m, dict) and m.get("role") == "assistant"]
        if not answers:
            raise RowError(f"field '{key}' has no assistant message")
        return _content_text(answers[-1].get("content"), key)
    return _text(row, key)


def _pair(prompt_key: str, answer_key: str, task: str, prefix: str = ""):
    def build(row: dict[str, Any], file: str, line: int) -> Record:
        messages = [
            {"role": "user", "content": prefix + _text(row, prompt_key)},
            {"role": "assistant", "content": _text(row, answer_key)},
        ]
        label = _text(row, answer_key) if task == "classification" else None
        return make_record(messages, task, file, line, label=label)

    return build


def _from_text(row: dict[str, Any], file: str, line: int) -> Record:
    return make_record([{"role": "assistant", "content": _text(row, "text")}], "text", file, line)


_BUILDERS = {
    "openai": _from_openai,
    "sharegpt": _from_sharegpt,
    "alpaca": _from_alpaca,
    "preference": _from_preference,
    "code": _pair("prompt", "completion", "code"),
    "classification": _pair("text", "label", "classification"),
    "summarization": _pair("document", "summary", "summarization", SUMMARIZE_PROMPT),
    "text": _from_text,
}
