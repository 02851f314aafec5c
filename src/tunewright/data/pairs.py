"""Preference pairs and binary feedback in the shapes other tools write them, detected per row and
normalised to `preference` and `feedback` records (see `records.py`).

A shape is named `<task>/<shape>`; the columns (after `data.columns`) and, where two shapes share
them, the type of a value tell them apart:

    preference/openai-dpo          input.messages, preferred_output, non_preferred_output
    preference/sharegpt            conversations (ending on the user turn), chosen, rejected
                                   (message objects, {"from", "value"} or {"role", "content"})
    preference/trl                 prompt, chosen, rejected as text
    preference/trl-conversational  the same as message lists
    preference/trl-implicit        chosen, rejected: whole conversations sharing the prompt
                                   (a text `prompt` beside them is ignored, as TRL does)
    preference/hh                  chosen, rejected: "\\n\\nHuman: ... \\n\\nAssistant: ..."
                                   transcripts sharing the prompt (Anthropic HH-RLHF)
    feedback/messages              messages (ending on the judged answer), label
    feedback/sharegpt              conversations (ending on the judged answer), label
    feedback/trl                   prompt, completion as text, label
    feedback/trl-conversational    the same as message lists

Answers that are empty, pairs with identical answers and missing prompts become records all
the same; the checks reject them with a reason of their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tunewright.data.fields import (
    RowError,
    any_messages,
    content_text,
    nested_field,
    openai_messages,
    sharegpt_messages,
    text_field,
    tools_field,
)
from tunewright.data.records import PROMPTED, Record, make_record

Builder = Callable[[dict[str, Any], str, int], Record]


def detect_pair_shape(row: dict[str, Any], task: str | None = None) -> str | None:
    """The row's preference or feedback shape (within `task` when given), or None."""
    keys = set(row)
    shape = None
    if task in (None, "preference"):
        shape = _preference_shape(row, keys)
    if shape is None and task in (None, "feedback"):
        shape = _feedback_shape(row, keys)
    return shape


def normalize_pair(row: dict[str, Any], shape: str, file: str, line: int) -> Record:
    """One row in `shape` (a full `<task>/<shape>` name, or just the task to detect it)."""
    if shape in PROMPTED:
        detected = detect_pair_shape(row, shape)
        if detected is None:
            raise RowError(f"no {shape} shape fits columns {sorted(row)[:12]} ({_HINT[shape]})")
        shape = detected
    missing = [key for key in _REQUIRED[shape] if key not in row]
    if missing:  # a null value is an empty answer or prompt, which the checks report
        raise RowError(f"missing field '{missing[0]}' ({shape})")
    return _BUILDERS[shape](row, file, line)


_HINT = {
    "preference": "prompt/chosen/rejected, conversations/chosen/rejected, "
    "input/preferred_output/non_preferred_output, or chosen/rejected transcripts",
    "feedback": "messages/label, conversations/label or prompt/completion/label",
}


def _preference_shape(row: dict[str, Any], keys: set[str]) -> str | None:
    if {"input", "preferred_output", "non_preferred_output"} <= keys:
        return "preference/openai-dpo"
    if not {"chosen", "rejected"} <= keys:
        return None
    if "conversations" in keys:
        return "preference/sharegpt"
    if "prompt" in keys and _is_list(row, "prompt"):
        return "preference/trl-conversational"
    if _is_list(row, "chosen") and _is_list(row, "rejected"):
        # Whole conversations: the prompt is the turns they share. A text `prompt` beside them
        # is a copy of the first turn (UltraFeedback-style); TRL ignores it too.
        return "preference/trl-implicit"
    return "preference/trl" if "prompt" in keys else "preference/hh"


def _feedback_shape(row: dict[str, Any], keys: set[str]) -> str | None:
    if "label" not in keys:
        return None
    if "messages" in keys:
        return "feedback/messages"
    if "conversations" in keys:
        return "feedback/sharegpt"
    if {"prompt", "completion"} <= keys:
        conversational = _is_list(row, "prompt")
        return "feedback/trl-conversational" if conversational else "feedback/trl"
    return None


def _is_list(row: dict[str, Any], key: str) -> bool:
    return isinstance(_structured(row, key), list)


def _structured(row: dict[str, Any], key: str) -> Any:
    """A prompt or answer as given: message objects (a list, one object, or JSON text of them,
    as a CSV cell holds them), else the value itself. Text that merely starts with a bracket,
    such as an answer that is JSON, stays text."""
    value = row.get(key)
    if not isinstance(value, str):
        return value
    try:
        parsed = nested_field(row, key)
    except RowError:
        return value
    items = [parsed] if isinstance(parsed, dict) else parsed
    is_messages = isinstance(items, list) and bool(items)
    if is_messages and all(isinstance(m, dict) and ("role" in m or "from" in m) for m in items):
        return parsed
    return value


# ---------------------------------------------------------------------------------------------
# Preference pairs


def _trl(row: dict[str, Any], file: str, line: int) -> Record:
    chosen, rejected = _answer(row, "chosen"), _answer(row, "rejected")
    return _pair(_prompt(row), chosen, rejected, file, line, tools_field(row.get("tools")))


def _prompt(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A `prompt` column: text (one user turn) or messages. None is no prompt at all."""
    value = _structured(row, "prompt")
    if value is None:
        return []
    if isinstance(value, (dict, list)):
        return any_messages(value if isinstance(value, list) else [value], "prompt")
    return [{"role": "user", "content": text_field(row, "prompt")}]


def _sharegpt(row: dict[str, Any], file: str, line: int) -> Record:
    messages = _system(row) + sharegpt_messages(nested_field(row, "conversations"), "conversations")
    chosen, rejected = _answer(row, "chosen"), _answer(row, "rejected")
    return _pair(messages, chosen, rejected, file, line, tools_field(row.get("tools")))


def _openai_dpo(row: dict[str, Any], file: str, line: int) -> Record:
    given = nested_field(row, "input")
    if not isinstance(given, dict):
        raise RowError(f"field 'input' must be an object, got {type(given).__name__}")
    messages = openai_messages(given.get("messages"), "input.messages")
    chosen = _answer(row, "preferred_output")
    rejected = _answer(row, "non_preferred_output")
    return _pair(messages, chosen, rejected, file, line, tools_field(given.get("tools")))


def _trl_implicit(row: dict[str, Any], file: str, line: int) -> Record:
    chosen = any_messages(_structured(row, "chosen"), "chosen")
    rejected = any_messages(_structured(row, "rejected"), "rejected")
    prompt, chosen_answer, rejected_answer = _shared_prompt(chosen, rejected)
    tools = tools_field(row.get("tools"))
    return _pair(prompt, chosen_answer, rejected_answer, file, line, tools)


def _hh(row: dict[str, Any], file: str, line: int) -> Record:
    chosen = _transcript(text_field(row, "chosen"), "chosen")
    rejected = _transcript(text_field(row, "rejected"), "rejected")
    return _pair(*_shared_prompt(chosen, rejected), file, line)


def _pair(
    messages: list[dict[str, Any]],
    chosen: str,
    rejected: str,
    file: str,
    line: int,
    tools: list[Any] | None = None,
) -> Record:
    return make_record(
        messages, "preference", file, line, tools=tools, chosen=chosen, rejected=rejected
    )


def _answer(row: dict[str, Any], key: str) -> str:
    """An answer: text, one message object, or a message list whose last assistant message is
    the answer (TRL's conversational rows, and rows whose answers repeat the prompt)."""
    value = _structured(row, key)
    if not isinstance(value, (dict, list)):
        return text_field(row, key)
    messages = any_messages(value if isinstance(value, list) else [value], key)
    answers = [m for m in messages if m["role"] == "assistant"]
    if not answers:
        raise RowError(f"field '{key}' has no assistant message")
    if answers[-1].get("tool_calls"):
        raise RowError(f"field '{key}': answers with tool calls are not supported in pairs")
    return content_text(answers[-1].get("content"), key)


def _shared_prompt(
    chosen: list[dict[str, Any]], rejected: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], str, str]:
    """(prompt, chosen answer, rejected answer) of two whole conversations: the prompt is the
    turns both share, and what follows it on each side must be one assistant answer."""
    shared = 0
    limit = min(len(chosen), len(rejected)) - 1  # each side keeps at least its last turn
    while shared < limit and chosen[shared] == rejected[shared]:
        shared += 1
    answers = []
    for side, messages in (("chosen", chosen), ("rejected", rejected)):
        rest = messages[shared:]
        if len(rest) != 1 or rest[0]["role"] != "assistant" or rest[0].get("tool_calls"):
            raise RowError(
                f"field '{side}': after the {shared} turns both sides share, it must hold one "
                f"assistant answer; it has {_turns(rest)}"
            )
        answers.append(rest[0]["content"])
    return chosen[:shared], answers[0], answers[1]


def _turns(messages: list[dict[str, Any]]) -> str:
    roles = ", ".join(str(m["role"]) for m in messages[:6])
    return f"{len(messages)} turn{'' if len(messages) == 1 else 's'}" + (
        f" ({roles})" if messages else ""
    )


# "\n\nHuman: " and "\n\nAssistant: " open each turn of an HH-RLHF transcript.
_SPEAKER = re.compile(r"\n\n(Human|Assistant):[ \t]?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def _transcript(text: str, key: str) -> list[dict[str, Any]]:
    """An HH transcript as messages. Text with no speaker at all is one answer with no prompt,
    which the checks report as a missing prompt."""
    parts = _SPEAKER.split("\n\n" + text.lstrip("\n"))
    if len(parts) == 1:
        return [{"role": "assistant", "content": text.strip()}]
    if parts[0].strip():
        raise RowError(f"field '{key}': text before the first 'Human:' or 'Assistant:' turn")
    speakers, contents = parts[1::2], parts[2::2]
    return [
        {"role": _HH_ROLES[speaker], "content": content.strip()}
        for speaker, content in zip(speakers, contents, strict=True)
    ]


# ---------------------------------------------------------------------------------------------
# Binary feedback


def _feedback_messages(row: dict[str, Any], file: str, line: int) -> Record:
    messages = openai_messages(nested_field(row, "messages"), "messages")
    return _judged(messages, row, file, line, tools_field(row.get("tools")))


def _feedback_sharegpt(row: dict[str, Any], file: str, line: int) -> Record:
    turns = nested_field(row, "conversations")
    messages = _system(row) + sharegpt_messages(turns, "conversations")
    return _judged(messages, row, file, line, tools_field(row.get("tools")))


def _feedback_trl(row: dict[str, Any], file: str, line: int) -> Record:
    answer = {"role": "assistant", "content": _answer(row, "completion")}
    return _judged([*_prompt(row), answer], row, file, line, tools_field(row.get("tools")))


def _judged(
    messages: list[dict[str, Any]],
    row: dict[str, Any],
    file: str,
    line: int,
    tools: list[Any] | None = None,
) -> Record:
    """A feedback record: only the last message, the judged answer, may carry loss, and only
    when it is desirable; earlier assistant turns are context."""
    label = _label(row.get("label"))
    if not messages or messages[-1]["role"] != "assistant":
        last = messages[-1]["role"] if messages else "nothing"
        raise RowError(f"the judged answer must be the last turn, an assistant one; got {last}")
    weighted = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in messages[:-1]]
    weighted.append({**messages[-1], "weight": 1 if label else 0})
    return make_record(weighted, "feedback", file, line, label=label, tools=tools)


_LABEL_TEXT = {"true": True, "false": False}  # CSV cells cannot hold a boolean


def _label(value: Any) -> bool:
    """A feedback label: a boolean, or the text true/false. Anything else (1, "yes", "good")
    is refused: a label read the wrong way round trains the opposite behaviour."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _LABEL_TEXT:
        return _LABEL_TEXT[value.strip().lower()]
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
    raise RowError(
        f"field 'label' must be true or false (desirable or not), got {shown}; a label that "
        "is not feedback can be renamed away with data.columns, e.g. {category: label}"
    )


def _system(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "system", "content": text_field(row, "system")}] if row.get("system") else []


_BUILDERS: dict[str, Builder] = {
    "preference/openai-dpo": _openai_dpo,
    "preference/sharegpt": _sharegpt,
    "preference/trl": _trl,
    "preference/trl-conversational": _trl,
    "preference/trl-implicit": _trl_implicit,
    "preference/hh": _hh,
    "feedback/messages": _feedback_messages,
    "feedback/sharegpt": _feedback_sharegpt,
    "feedback/trl": _feedback_trl,
    "feedback/trl-conversational": _feedback_trl,
}
# The columns each shape needs, as detection reads them.
_REQUIRED = {
    "preference/openai-dpo": ("input", "preferred_output", "non_preferred_output"),
    "preference/sharegpt": ("conversations", "chosen", "rejected"),
    "preference/trl": ("prompt", "chosen", "rejected"),
    "preference/trl-conversational": ("prompt", "chosen", "rejected"),
    "preference/trl-implicit": ("chosen", "rejected"),
    "preference/hh": ("chosen", "rejected"),
    "feedback/messages": ("messages", "label"),
    "feedback/sharegpt": ("conversations", "label"),
    "feedback/trl": ("prompt", "completion", "label"),
    "feedback/trl-conversational": ("prompt", "completion", "label"),
}
SHAPES = tuple(_BUILDERS)
