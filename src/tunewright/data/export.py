"""Canonical records -> OpenAI chat JSONL, alpaca JSON, sharegpt JSON, OpenAI DPO JSONL or TRL
JSONL.

A record the target format cannot hold (tool calls in alpaca, say) is not squeezed in: it is
listed with its reason, and the caller writes those to a file beside the export. Preference
pairs go to `openai-dpo` or `trl`, binary feedback to `trl` (or `openai`, where its undesirable
answers keep weight 0); the chat formats refuse them rather than drop an answer or a label.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from tunewright.data.normalize import RowError
from tunewright.data.records import Record, location, prompt_messages
from tunewright.files import atomic_write_text, write_jsonl

ExportFormat = Literal["openai", "alpaca", "sharegpt", "openai-dpo", "trl"]
SUFFIX = {
    "openai": ".jsonl",
    "alpaca": ".json",
    "sharegpt": ".json",
    "openai-dpo": ".jsonl",
    "trl": ".jsonl",
}
TO_SHAREGPT = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}


def to_openai(record: Record) -> dict[str, Any]:
    """OpenAI chat: `messages` (weights kept, so feedback keeps its undesirable answers at
    weight 0) and `tools`."""
    _refuse_pairs(record, "openai")
    row: dict[str, Any] = {"messages": record["messages"]}
    if record.get("tools"):
        row["tools"] = record["tools"]
    return row


def to_alpaca(record: Record) -> dict[str, Any]:
    _refuse_pairs(record, "alpaca")
    _refuse_feedback(record, "alpaca")
    messages = list(record["messages"])
    row: dict[str, Any] = {}
    if messages and messages[0]["role"] == "system":
        row["system"] = messages.pop(0)["content"]
    pairs = []
    for i in range(0, len(messages), 2):
        user, answer = messages[i], messages[i + 1] if i + 1 < len(messages) else None
        if user["role"] != "user" or answer is None or answer["role"] != "assistant":
            raise RowError("alpaca holds only user/assistant pairs ending with an answer")
        if user.keys() - {"role", "content"} or answer.keys() - {"role", "content"}:
            raise RowError("alpaca cannot hold tool calls, names or weights")
        pairs.append([user["content"], answer["content"]])
    if not pairs or record.get("tools"):
        raise RowError("alpaca needs at least one user/assistant pair and no tools")
    last = pairs.pop()
    row.update({"instruction": last[0], "input": "", "output": last[1]})
    if pairs:
        row["history"] = pairs
    return row


def to_sharegpt(record: Record) -> dict[str, Any]:
    _refuse_pairs(record, "sharegpt")
    _refuse_feedback(record, "sharegpt")
    conversations = []
    for message in record["messages"]:
        if message.keys() - {"role", "content", "tool_calls", "tool_call_id", "name"}:
            raise RowError("sharegpt cannot hold per-message weights")
        for call in message.get("tool_calls") or []:
            function = call.get("function", {})
            value = json.dumps(
                {"name": function.get("name"), "arguments": _arguments(function.get("arguments"))},
                ensure_ascii=False,
            )
            conversations.append({"from": "function_call", "value": value})
        if message.get("tool_calls") and not message.get("content"):
            continue
        if message.get("tool_calls"):
            raise RowError("sharegpt cannot hold text and a tool call in one turn")
        conversations.append({"from": TO_SHAREGPT[message["role"]], "value": message["content"]})
    row: dict[str, Any] = {"conversations": conversations}
    if record.get("tools"):
        row["tools"] = json.dumps(record["tools"], ensure_ascii=False)
    return row


def _arguments(arguments: Any) -> Any:
    """Arguments back as JSON values where they parse; kept as the original string otherwise."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return arguments
    return arguments


def to_openai_dpo(record: Record) -> dict[str, Any]:
    """OpenAI's DPO row: {"input": {"messages", "tools"?}, "preferred_output": [assistant],
    "non_preferred_output": [assistant]}."""
    if record.get("task") != "preference" or record.get("chosen") is None:
        raise RowError("DPO needs preference data (prompt, chosen, rejected)")
    prompt: dict[str, Any] = {"messages": record["messages"]}
    if record.get("tools"):
        prompt["tools"] = record["tools"]
    return {
        "input": prompt,
        "preferred_output": [{"role": "assistant", "content": record["chosen"]}],
        "non_preferred_output": [{"role": "assistant", "content": record.get("rejected") or ""}],
    }


def to_trl(record: Record) -> dict[str, Any]:
    """TRL's conversational shapes: a pair as {"prompt", "chosen", "rejected"}, feedback as
    {"prompt", "completion", "label"} (what DPOTrainer and KTOTrainer read), each a message
    list; `tools` where the record has them."""
    if record.get("task") == "preference":
        row: dict[str, Any] = {
            "prompt": _unweighted(record["messages"]),
            "chosen": [{"role": "assistant", "content": record.get("chosen") or ""}],
            "rejected": [{"role": "assistant", "content": record.get("rejected") or ""}],
        }
    elif record.get("task") == "feedback":
        row = {
            "prompt": _unweighted(prompt_messages(record)),
            "completion": _unweighted(record["messages"][-1:]),
            "label": record["label"],
        }
    else:
        raise RowError("trl export holds preference pairs and feedback; use --to openai")
    if record.get("tools"):
        row["tools"] = record["tools"]
    return row


def _unweighted(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without our loss weights: TRL's trainers decide what is trained."""
    return [{k: v for k, v in m.items() if k != "weight"} for m in messages]


def _refuse_pairs(record: Record, target: str) -> None:
    if record.get("task") == "preference":
        raise RowError(f"{target} holds one answer per prompt; export pairs with openai-dpo or trl")


def _refuse_feedback(record: Record, target: str) -> None:
    if record.get("task") == "feedback":
        raise RowError(f"{target} cannot mark an answer undesirable; export feedback with trl")


CONVERTERS = {
    "openai": to_openai,
    "alpaca": to_alpaca,
    "sharegpt": to_sharegpt,
    "openai-dpo": to_openai_dpo,
    "trl": to_trl,
}


def export_records(records: list[Record], fmt: ExportFormat, target: Path) -> list[dict[str, Any]]:
    """Write `records` in `fmt` to `target` atomically; returns the records that could not be
    exported, each as {"source": "file:line", "reason": ...}."""
    converter = CONVERTERS[fmt]
    rows, skipped = [], []
    for record in records:
        try:
            rows.append(converter(record))
        except RowError as exc:
            skipped.append({"source": location(record), "reason": str(exc)})
    if SUFFIX[fmt] == ".jsonl":
        write_jsonl(target, rows)
    else:
        atomic_write_text(target, json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
    return skipped
