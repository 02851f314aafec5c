"""Prepared records (the data stage's train/eval) -> OpenAI fine-tuning JSONL.

Supervised files are the data stage's OpenAI export (`data.export.to_openai`); preference records
train on their chosen answer there, as they do locally. DPO files are its OpenAI DPO export
(`data.export.to_openai_dpo`): each prompt with its chosen and rejected answers. Reinforcement
files hold what local GRPO samples from (`training.grpo.grpo_rows`): each example's conversation
up to its last answer as `messages`, and that answer (a pair's chosen one) as `reference`, the
field the graders read (`{{item.reference}}`, `item["reference"]`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewright.config.openai_section import OpenAIMethod
from tunewright.data.export import export_records
from tunewright.data.records import Record, expected_answer, location, prompt_messages
from tunewright.files import write_jsonl


def write_openai_file(
    records: list[Record], method: OpenAIMethod, target: Path, *, needs_reference: bool = False
) -> list[dict[str, Any]]:
    """Write `records` as an OpenAI JSONL file for `method`; returns the records left out, each
    as {"source": "file:line", "reason": ...}. `needs_reference`: reinforcement rows without a
    reference answer are left out (a grader compares with it)."""
    if method == "supervised":
        return export_records([with_chosen_answer(r) for r in records], "openai", target)
    if method == "dpo":
        return export_records(records, "openai-dpo", target)
    rows, skipped = [], []
    for record in records:
        row, reason = rft_row(record, needs_reference)
        if row is None:
            skipped.append({"source": location(record), "reason": reason})
        else:
            rows.append(row)
    write_jsonl(target, rows)
    return skipped


def with_chosen_answer(record: Record) -> Record:
    """A preference record as a conversation that ends with its chosen answer (SFT on chosen,
    like local training); other records unchanged."""
    if record.get("task") != "preference":
        return record
    answer = {"role": "assistant", "content": record.get("chosen") or ""}
    return {**record, "task": "chat", "messages": [*record["messages"], answer]}


def rft_row(record: Record, needs_reference: bool) -> tuple[dict[str, Any] | None, str]:
    """One reinforcement row, `{"messages": [...], "reference": ...}`, or (None, why not).

    OpenAI samples the answer to the last message, which must be the user's; its reasoning
    models take the system prompt as the developer role. Loss weights are ours, not OpenAI's."""
    if record.get("task") == "text" or not any(m["role"] == "assistant" for m in _all(record)):
        return None, "no prompt with an answer to learn from (plain text, or no assistant turn)"
    if record.get("tools"):
        return None, "has tools; tunewright sends none to reinforcement fine-tuning"
    prompt = prompt_messages(record)
    if not prompt or prompt[-1]["role"] != "user":
        last = prompt[-1]["role"] if prompt else "nothing"
        return None, f"the prompt ends on {last}, and OpenAI answers a user turn"
    reference = expected_answer(record)
    if reference is None and needs_reference:
        return None, "no reference answer, which exact_match and similarity compare with"
    messages = [
        {**{k: v for k, v in m.items() if k != "weight"}, "role": _role(m["role"])} for m in prompt
    ]
    return {"messages": messages, "reference": reference}, ""


def _all(record: Record) -> list[dict[str, Any]]:
    """The record's messages with its answer: a pair's prompt carries none of its own."""
    if record.get("task") == "preference":
        return [*record["messages"], {"role": "assistant", "content": record.get("chosen")}]
    return record["messages"]


def _role(role: str) -> str:
    return "developer" if role == "system" else role
