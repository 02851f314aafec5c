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
              | "preference" | "feedback" | "text",
      "label": str | bool | None,        # classification label (also the assistant answer);
                                         # feedback: True = desirable answer, False = not
      "tools": list | None,              # tool/function schemas offered to the model
      "chosen": str | None,              # preference pairs: the preferred answer ...
      "rejected": str | None,            # ... and the dispreferred one (prompt = messages)
      "source": {"file": str, "line": int},   # 1-based line (JSONL/CSV) or record number
    }

For plain `text` records the whole text is one assistant message, so all of it carries loss.

Two task types judge answers instead of giving one to imitate:

- `preference`: `messages` is the prompt alone (it ends on a user or tool turn); `chosen` and
  `rejected` are the two answers to it, as text.
- `feedback` (unpaired, KTO-style): `messages` is the conversation ending with the judged
  answer, an assistant turn, and `label` says whether that answer is desirable (True) or not
  (False). Only the judged answer may carry loss: it has weight 1 when desirable and 0 when not,
  and earlier assistant turns have weight 0. So a feedback record that reaches SFT
  (`data.feedback_as_sft`) teaches the desirable answers and nothing else.

Both keep their prompt in `messages` for the split and the leakage check, which compare prompts
so that one prompt's examples never straddle train and eval.
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]
TASKS = (
    "chat",
    "instruction",
    "classification",
    "code",
    "summarization",
    "preference",
    "feedback",
    "text",
)
ROLES = ("system", "user", "assistant", "tool")
# Tasks whose examples are grouped by prompt: several pairs or judged answers per prompt are
# normal, and an eval example whose prompt was trained on is a leak.
PROMPTED = ("preference", "feedback")


def make_record(
    messages: list[dict[str, Any]],
    task: str,
    file: str,
    line: int,
    *,
    label: str | bool | None = None,
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
    """Everything the model is trained to write (assistant turns, the chosen answer of a pair,
    the judged answer of feedback)."""
    if record.get("task") == "preference":
        return str(record.get("chosen") or "")
    if record.get("task") == "feedback":
        return str(record["messages"][-1].get("content") or "") if record["messages"] else ""
    return "\n".join(
        str(m.get("content") or "") for m in record["messages"] if m.get("role") == "assistant"
    )


def full_text(record: Record) -> str:
    """Prompt and answers together: the text duplicate checks compare. A pair counts both of
    its answers: pairs that share a prompt and a chosen answer are still different pairs."""
    text = prompt_text(record) + "\n" + answer_text(record)
    if record.get("task") == "preference":
        text += "\n" + str(record.get("rejected") or "")
    return text


def expected_answer(record: Record) -> str | None:
    """The expected answer: the last assistant turn, the chosen answer of a pair, or the judged
    answer of feedback when it is desirable (an undesirable one is nobody's reference)."""
    if record["task"] == "preference":
        return record.get("chosen")
    if record["task"] == "feedback" and record.get("label") is not True:
        return None
    answers = [m for m in record["messages"] if m["role"] == "assistant"]
    return answers[-1]["content"] if answers and answers[-1]["content"].strip() else None


def prompt_messages(record: Record) -> list[dict[str, Any]]:
    """The conversation up to (not including) the answer being evaluated."""
    messages = record["messages"]
    if record["task"] == "preference":
        return messages
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last]


def sides(record: Record) -> list[tuple[str, list[dict[str, Any]]]]:
    """The conversations a record holds, named: a pair's prompt with each of its answers
    ("chosen", "rejected"); one unnamed conversation ("") for every other record."""
    if record.get("task") != "preference":
        return [("", record["messages"])]
    return [
        (side, [*record["messages"], {"role": "assistant", "content": record.get(side) or ""}])
        for side in ("chosen", "rejected")
    ]


def render_sides(
    tokenizer: Any, record: Record, train_on_prompt: bool, max_seq_len: int
) -> list[tuple[str, Any]]:
    """Each side of a record rendered exactly as training sees it (`chat.Rendered`): what
    `tunewright data render` prints and the web UI's data page draws."""
    from tunewright.chat import render_example

    return [
        (
            side,
            render_example(
                tokenizer,
                messages,
                tools=record.get("tools"),
                train_on_prompt=train_on_prompt,
                max_seq_len=max_seq_len,
            ),
        )
        for side, messages in sides(record)
    ]
