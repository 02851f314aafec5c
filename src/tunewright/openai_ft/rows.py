"""The shape of one row of an OpenAI fine-tuning file, as OpenAI's data-preparation guide
describes it: chat rows (`{"messages": [...], "tools": [...], "parallel_tool_calls": ...}`),
DPO rows (`{"input": {...}, "preferred_output": [...], "non_preferred_output": [...]}`) and
reinforcement rows (`{"messages": [...ending on the user's turn], ...fields the graders read}`).

Each problem is (check, detail); `check.py` adds the line.

Decisions:
- Legacy function calling (role `function`, `function_call`, top-level `functions`) is reported as
  `legacy_function_calling`: OpenAI has deprecated it, and tunewright's records and open models'
  chat templates use tools (`tool_calls`, role `tool`).
- `refusal` and any other message key outside ALLOWED_MESSAGE_KEYS is `unknown_key`: the
  fine-tuning guide does not list it.
- Content must be text: a string, or a list of text parts. An assistant turn with `tool_calls`
  may leave it out. Empty strings are left to the data stage (`empty_output`, `bad_conversation`).
"""

from __future__ import annotations

from typing import Any, Literal

Kind = Literal["chat", "dpo", "rft"]
RowProblem = tuple[str, str]  # (check, detail)

KNOWN_ROLES = ("system", "user", "assistant", "tool")
# OpenAI's reasoning models, the only ones reinforcement fine-tuning runs on, take `developer`.
RFT_ROLES = (*KNOWN_ROLES, "developer")
ALLOWED_MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "weight", "tool_calls", "tool_call_id"}
)
ALLOWED_CHAT_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})
ALLOWED_DPO_KEYS = frozenset({"input", "preferred_output", "non_preferred_output"})
LEGACY_KEYS = frozenset({"functions", "function_call"})


def row_problems(row: Any, kind: Kind) -> list[RowProblem]:
    if not isinstance(row, dict):
        return [("not_an_object", f"expected a JSON object, got {_type(row)}")]
    if kind == "rft":
        return _rft_problems(row)
    return _chat_problems(row) if kind == "chat" else _dpo_problems(row)


def _chat_problems(row: dict[str, Any]) -> list[RowProblem]:
    found = _key_problems(row, ALLOWED_CHAT_KEYS, "")
    if "messages" not in row:
        return [*found, ("missing_messages", "no 'messages' key")]
    messages = row["messages"]
    if not isinstance(messages, list):
        return [*found, ("messages_not_list", f"'messages' is {_type(messages)}, not a list")]
    if not messages:
        return [*found, ("missing_messages", "'messages' is empty")]
    found += _message_problems(messages)
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        found.append(("no_assistant_message", "no assistant message to learn from"))
    return found


def _rft_problems(row: dict[str, Any]) -> list[RowProblem]:
    """A prompt for OpenAI to answer; any other top-level key is a field for the graders."""
    found = [p for p in _key_problems(row, ALLOWED_CHAT_KEYS, "") if p[0] != "unknown_key"]
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*found, ("missing_messages", "'messages' must be a non-empty list")]
    found += _message_problems(messages, RFT_ROLES)
    last = messages[-1]
    if not (isinstance(last, dict) and last.get("role") == "user"):
        found.append(("last_not_user", "the last message must be the user's: it is the prompt"))
    return found


def _dpo_problems(row: dict[str, Any]) -> list[RowProblem]:
    found = _key_problems(row, ALLOWED_DPO_KEYS, "")
    prompt = row.get("input")
    if not isinstance(prompt, dict):
        found.append(("missing_input", f"'input' must be an object, got {_type(prompt)}"))
    else:
        found += _key_problems(prompt, ALLOWED_CHAT_KEYS, "input.")
        messages = prompt.get("messages")
        if not isinstance(messages, list) or not messages:
            found.append(("missing_messages", "'input.messages' must be a non-empty list"))
        else:
            found += _message_problems(messages)
    for key in ("preferred_output", "non_preferred_output"):
        if single_answer(row.get(key)) is None:
            detail = f"'{key}' must be a list of one assistant message with text content"
            found.append(("bad_preference_output", detail))
    return found


def _key_problems(row: dict[str, Any], allowed: frozenset[str], where: str) -> list[RowProblem]:
    found = []
    for key in row:
        if key in LEGACY_KEYS:
            found.append(("legacy_function_calling", f"'{where}{key}': use 'tools' instead"))
        elif key not in allowed:
            found.append(("unknown_key", f"unknown key '{where}{key}'"))
    return found


def _message_problems(
    messages: list[Any], roles: tuple[str, ...] = KNOWN_ROLES
) -> list[RowProblem]:
    found: list[RowProblem] = []
    for k, message in enumerate(messages, 1):
        if not isinstance(message, dict):
            found.append(("message_not_object", f"message {k} is {_type(message)}"))
            continue
        role = message.get("role")
        if role == "function":
            found.append(("legacy_function_calling", f"message {k}: role 'function': use 'tool'"))
        elif role not in roles:
            found.append(("unknown_role", f"message {k}: unknown role {role!r}"))
        for key in message:
            if key in LEGACY_KEYS:
                detail = f"message {k}: '{key}': use 'tool_calls'"
                found.append(("legacy_function_calling", detail))
            elif key not in ALLOWED_MESSAGE_KEYS:
                found.append(("unknown_key", f"message {k}: unknown key '{key}'"))
        content = message.get("content")
        # An assistant turn that only calls tools has no text to carry.
        calls_only = role == "assistant" and message.get("tool_calls") and content in ("", None)
        if not (_has_text(content) or calls_only):
            found.append(("missing_content", f"message {k} ({role}): content must be text"))
        found += _weight_problems(message, k)
    return found


def _weight_problems(message: dict[str, Any], k: int) -> list[RowProblem]:
    if "weight" not in message:
        return []
    weight = message["weight"]
    if message.get("role") != "assistant":
        return [("weight_not_on_assistant", f"message {k}: weight on a {message.get('role')} turn")]
    if isinstance(weight, bool) or weight not in (0, 1):
        return [("bad_weight", f"message {k}: weight must be 0 or 1, got {weight!r}")]
    return []


def _has_text(content: Any) -> bool:
    if isinstance(content, str):
        return True
    return (
        isinstance(content, list)
        and bool(content)
        and all(isinstance(p, dict) and p.get("type") == "text" for p in content)
    )


def single_answer(output: Any) -> str | None:
    """The text of a DPO output: a list of exactly one assistant message with string content."""
    if not (isinstance(output, list) and len(output) == 1 and isinstance(output[0], dict)):
        return None
    message = output[0]
    ok = message.get("role") == "assistant" and isinstance(message.get("content"), str)
    return message["content"] if ok else None


def _type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else "?")
