"""Turning raw rows of any supported format into canonical records (see `records.py`).

Each format is detected from a row's columns (after the user's column map) or declared in
`data.format`. Preference pairs and binary feedback come in several shapes each, detected per
row by `pairs`; every other format has one shape, its name. A row that does not fit its format is
not guessed at: `normalize_row` raises `RowError` with the field at fault, and the caller rejects
the row with that reason.
"""

from __future__ import annotations

from typing import Any

from tunewright.data.fields import (
    RowError,
    nested_field,
    openai_messages,
    sharegpt_messages,
    text_field,
    tools_field,
)
from tunewright.data.pairs import detect_pair_shape, normalize_pair
from tunewright.data.records import PROMPTED, Record, make_record

__all__ = ["RowError", "apply_columns", "detect_format", "detect_shape", "normalize_row"]

# Fields each single-shape format needs (required) and may have (optional), in its own names.
# Preference pairs and feedback are detected by `pairs` before these.
FORMATS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "openai": (("messages",), ("tools",)),
    "sharegpt": (("conversations",), ("tools", "system")),
    "alpaca": (("instruction", "output"), ("input", "system", "history")),
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
    "code",
    "classification",
    "summarization",
    "text",
)
DEFAULT_TASK = {
    "openai": "chat",
    "sharegpt": "chat",
    "alpaca": "instruction",
    "code": "code",
    "classification": "classification",
    "summarization": "summarization",
    "text": "text",
}
SUMMARIZE_PROMPT = "Summarize the following document.\n\n"


def apply_columns(row: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """Rename the user's columns to the format's names (`columns` maps ours -> theirs)."""
    if not columns:
        return row
    renamed = dict(row)
    for ours, theirs in columns.items():
        if theirs in renamed:
            renamed[ours] = renamed.pop(theirs)
    return renamed


def detect_shape(row: dict[str, Any], fmt: str | None = None) -> str | None:
    """The row's shape: `preference/<shape>` or `feedback/<shape>` (see `pairs`), or the name
    of a single-shape format. `fmt`, a declared format, narrows the search to it."""
    if fmt in PROMPTED:
        return detect_pair_shape(row, fmt)
    if fmt is not None:
        return fmt
    pair = detect_pair_shape(row)
    if pair is not None:
        return pair
    keys = set(row)
    return next((name for name in DETECTION_ORDER if set(FORMATS[name][0]) <= keys), None)


def detect_format(row: dict[str, Any]) -> str | None:
    """The row's format (a shape's task for pairs and feedback), or None."""
    shape = detect_shape(row)
    return shape.split("/")[0] if shape else None


def normalize_row(
    row: dict[str, Any],
    fmt: str,
    file: str,
    line: int,
    *,
    task: str = "auto",
    system_prompt: str | None = None,
) -> Record:
    """One raw row (already column-mapped) in format or shape `fmt` -> a canonical record.

    `task` overrides the format's task, except for pairs and feedback, whose task is their
    shape: read as anything else, their answers would be trained on as they are."""
    if fmt.split("/")[0] in PROMPTED:
        record = normalize_pair(row, fmt, file, line)
    else:
        for key in FORMATS[fmt][0]:
            if key not in row or row[key] is None:
                raise RowError(f"missing field '{key}' (format {fmt})")
        record = _BUILDERS[fmt](row, file, line)
        record["task"] = DEFAULT_TASK[fmt] if task == "auto" else task
    messages = record["messages"]
    if system_prompt and not any(m["role"] == "system" for m in messages) and fmt != "text":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return record


def _from_openai(row: dict[str, Any], file: str, line: int) -> Record:
    _refuse_label(row)
    messages = openai_messages(nested_field(row, "messages"), "messages")
    return make_record(messages, "chat", file, line, tools=tools_field(row.get("tools")))


def _from_sharegpt(row: dict[str, Any], file: str, line: int) -> Record:
    _refuse_label(row)
    messages: list[dict[str, Any]] = []
    if row.get("system"):
        messages.append({"role": "system", "content": text_field(row, "system")})
    messages += sharegpt_messages(nested_field(row, "conversations"), "conversations")
    return make_record(messages, "chat", file, line, tools=tools_field(row.get("tools")))


def _refuse_label(row: dict[str, Any]) -> None:
    """A conversation with a `label` is binary feedback: read as chat, its undesirable answers
    would be trained on as good ones."""
    if "label" in row:
        raise RowError(
            "field 'label' marks binary feedback (is the answer desirable?), not a chat "
            "example; set data.format: feedback, or rename a label that is not feedback with "
            "data.columns, e.g. {category: label}"
        )


def _from_alpaca(row: dict[str, Any], file: str, line: int) -> Record:
    messages: list[dict[str, Any]] = []
    if row.get("system"):
        messages.append({"role": "system", "content": text_field(row, "system")})
    history = nested_field(row, "history") or []
    if not isinstance(history, list):
        raise RowError("field 'history' must be a list of [instruction, response] pairs")
    for i, pair in enumerate(history):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise RowError(f"history[{i}] must be an [instruction, response] pair")
        messages += [
            {"role": "user", "content": str(pair[0])},
            {"role": "assistant", "content": str(pair[1])},
        ]
    prompt = text_field(row, "instruction")
    if text_field(row, "input").strip():
        prompt = f"{prompt}\n\n{text_field(row, 'input')}" if prompt else text_field(row, "input")
    messages += [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": text_field(row, "output")},
    ]
    return make_record(messages, "instruction", file, line)


def _pair(prompt_key: str, answer_key: str, task: str, prefix: str = ""):
    def build(row: dict[str, Any], file: str, line: int) -> Record:
        messages = [
            {"role": "user", "content": prefix + text_field(row, prompt_key)},
            {"role": "assistant", "content": text_field(row, answer_key)},
        ]
        label = text_field(row, answer_key) if task == "classification" else None
        return make_record(messages, task, file, line, label=label)

    return build


def _from_text(row: dict[str, Any], file: str, line: int) -> Record:
    message = {"role": "assistant", "content": text_field(row, "text")}
    return make_record([message], "text", file, line)


_BUILDERS = {
    "openai": _from_openai,
    "sharegpt": _from_sharegpt,
    "alpaca": _from_alpaca,
    "code": _pair("prompt", "completion", "code"),
    "classification": _pair("text", "label", "classification"),
    "summarization": _pair("document", "summary", "summarization", SUMMARIZE_PROMPT),
    "text": _from_text,
}
