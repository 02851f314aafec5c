"""A file's own message keys and speaker names (`messages:` of a data.train entry), rewritten
into the names our readers take before the row is normalised: sharegpt's `from`/`value` for
conversations and preference answers, OpenAI's `role`/`content` for `messages`. So LLaMA-Factory's
`tags` and Axolotl's `message_property_mappings`/`roles` read the files as they are."""

from __future__ import annotations

from typing import Any

from tunewright.config.data_source import MessageKeys
from tunewright.data.fields import SHAREGPT_ROLES, RowError, nested_field

# Fields that hold messages: a list of them, or one (a preference pair's chosen/rejected answer).
SHAREGPT_FIELDS = ("conversations", "chosen", "rejected")
OPENAI_FIELD = "messages"


def apply_message_keys(row: dict[str, Any], keys: MessageKeys) -> dict[str, Any]:
    """The row with its messages renamed; fields that hold no messages are left as they are."""
    renamed = dict(row)
    for field in (*SHAREGPT_FIELDS, OPENAI_FIELD):
        if field not in row:
            continue
        value = nested_field(row, field)
        openai = field == OPENAI_FIELD
        if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
            renamed[field] = [
                _message(m, keys, f"{field}[{i}]", openai) for i, m in enumerate(value)
            ]
        elif isinstance(value, dict) and keys.role in value:
            renamed[field] = _message(value, keys, field, openai)
    return renamed


def _message(message: dict[str, Any], keys: MessageKeys, where: str, openai: bool) -> dict:
    if keys.role not in message:
        raise RowError(f"{where} has no '{keys.role}' (data.train messages.role)")
    speaker = str(message[keys.role])
    ours = keys.speakers.get(speaker, speaker)
    if ours not in SHAREGPT_ROLES:
        known = ", ".join(sorted(keys.speakers)) or "none"
        raise RowError(
            f"{where}.{keys.role}: unknown speaker {speaker!r} (mapped: {known}); add it to "
            "messages.speakers"
        )
    rest = {k: v for k, v in message.items() if k not in (keys.role, keys.content)}
    if openai:
        if ours == "function_call":
            raise RowError(f"{where}: function_call turns need format sharegpt (conversations)")
        return {**rest, "role": SHAREGPT_ROLES[ours], "content": message.get(keys.content)}
    return {**rest, "from": ours, "value": message.get(keys.content)}
