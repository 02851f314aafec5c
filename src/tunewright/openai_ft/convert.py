"""Prepared records (the data stage's train/eval) -> OpenAI fine-tuning JSONL.

Supervised files are the data stage's OpenAI export (`data.export.to_openai`); preference records
train on their chosen answer there, as they do locally. DPO files pair each prompt with its
chosen and rejected answers in OpenAI's preference shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from tunewright.data.export import export_records
from tunewright.data.normalize import RowError
from tunewright.data.records import Record, location
from tunewright.files import write_jsonl

Method = Literal["supervised", "dpo"]


def write_openai_file(records: list[Record], method: Method, target: Path) -> list[dict[str, Any]]:
    """Write `records` as an OpenAI JSONL file for `method`; returns the records left out, each
    as {"source": "file:line", "reason": ...}."""
    if method == "supervised":
        return export_records([with_chosen_answer(r) for r in records], "openai", target)
    rows, skipped = [], []
    for record in records:
        try:
            rows.append(to_dpo(record))
        except RowError as exc:
            skipped.append({"source": location(record), "reason": str(exc)})
    write_jsonl(target, rows)
    return skipped


def with_chosen_answer(record: Record) -> Record:
    """A preference record as a conversation that ends with its chosen answer (SFT on chosen,
    like local training); other records unchanged."""
    if record.get("task") != "preference":
        return record
    answer = {"role": "assistant", "content": record.get("chosen") or ""}
    return {**record, "messages": [*record["messages"], answer]}


def to_dpo(record: Record) -> dict[str, Any]:
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
