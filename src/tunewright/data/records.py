"""The canonical record every input format is normalised into.

A record is a plain JSON-serialisable dict, so it can be written to JSONL as it is:

    {
      "messages": [                      # OpenAI chat style, in order
        {"role": "system" | "user" | "assistant" | "tool",
         "content": str,                 # "" allowed only on assistant turns with tool_calls
         "tool_calls": [...],            # optional, assistant only: OpenAI tool-call objects
         "tool_call_id": str,            # optional, tool only
         "name": str,                    # optional
         "weight": 0 | 1}                # optional, assistant only: 0 = no loss on this turn
      ],
      "task": "chat" | "instruction" | "classification" | "code" | "summarization"
              | "preference" | "text",
      "label": str | None,               # classification label (also the assistant answer)
      "tools": list | None,              # tool/function schemas offered to the model
      "chosen": str | None,              # preference pairs: the preferred answer ...
      "rejected": str | None,            # ... and the dispreferred one (prompt = messages)
      "source": {"file": str, "line": int},   # 1-based line (JSONL/CSV) or record number
    }

For plain `text` records the whole text is one assistant message, so all of it carries loss.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]
TASKS = ("chat", "instruction", "classification", "code", "summarization", "preference", "text")
ROLES = ("system", "user", "assistant", "tool")


def make_record(
    messages: list[dict[str, Any]],
    task: str,
    file: str,
    line: int,
    *,
    label: str | None = None,
    tools: list[Any] | None = None,
    chosen: str | None = None,
    rejected: str | None = None,
) -> Record:
    return {
        "messages": messages,
        "task": task,
        "label": label,
        "tools": tools,
        "chosen": chosen,
        "rejected": rejected,
        "source": {"file": file, "line": line},
    }


def location(record: Record) -> str:
    """`file:line` of the row a record came from."""
    source = record.get("source") or {}
    return f"{source.get('file', '?')}:{source.get('line', '?')}"


def prompt_text(record: Record) -> str:
    """Everything the model reads (all non-assistant turns), joined, for duplicate checks."""
    return "\n".join(
        str(m.get("content") or "") for m in record["messages"] if m.get("role") != "assistant"
    )


def answer_text(record: Record) -> str:
    """Everything the model is trained to write (assistant turns, or the chosen answer)."""
    if record.get("task") == "preference":
        return str(record.get("chosen") or "")
    return "\n".join(
        str(m.get("content") or "") for m in record["messages"] if m.get("role") == "assistant"
    )


def full_text(record: Record) -> str:
    """Prompt and answer together: the text duplicate and leakage checks compare."""
    return prompt_text(record) + "\n" + answer_text(record)


def expected_answer(record: Record) -> str | None:
    """The expected answer: the last assistant turn (or the chosen answer of a pair)."""
    if record["task"] == "preference":
        return record.get("chosen")
    answers = [m for m in record["messages"] if m["role"] == "assistant"]
    return answers[-1]["content"] if answers and answers[-1]["content"].strip() else None


def prompt_messages(record: Record) -> list[dict[str, Any]]:
    """The conversation up to (not including) the answer being evaluated."""
    messages = record["messages"]
    if record["task"] == "preference":
        return messages
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last]
