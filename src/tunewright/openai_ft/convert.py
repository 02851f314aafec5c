"""Prepared records (the data stage's train/eval) -> OpenAI fine-tuning JSONL.

Supervised files are the data stage's OpenAI export (`data.export.to_openai`); preference records
train on their chosen answer there, as they do locally. DPO files are its OpenAI DPO export
(`data.export.to_openai_dpo`): each prompt with its chosen and rejected answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewright.config.openai_section import OpenAIMethod
from tunewright.data.export import export_records
from tunewright.data.records import Record


def write_openai_file(
    records: list[Record], method: OpenAIMethod, target: Path
) -> list[dict[str, Any]]:
    """Write `records` as an OpenAI JSONL file for `method`; returns the records left out, each
    as {"source": "file:line", "reason": ...}."""
    if method == "supervised":
        return export_records([with_chosen_answer(r) for r in records], "openai", target)
    return export_records(records, "openai-dpo", target)


def with_chosen_answer(record: Record) -> Record:
    """A preference record as a conversation that ends with its chosen answer (SFT on chosen,
    like local training); other records unchanged."""
    if record.get("task") != "preference":
        return record
    answer = {"role": "assistant", "content": record.get("chosen") or ""}
    return {**record, "task": "chat", "messages": [*record["messages"], answer]}
