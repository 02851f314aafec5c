"""Tool use in the Hermes format: tools into the prompt, `<tool_call>` blocks out of the reply.

A chat template that knows tools (it mentions `tools`) renders them itself. Otherwise the server
puts this prompt at the start of the system message, and writes earlier assistant tool calls in
the same format, so the model sees one convention throughout:

    You can call functions. To call one, reply with exactly
    <tool_call>
    {"name": "<function name>", "arguments": {<arguments as JSON>}}
    </tool_call>
    Functions (JSON schemas):
    <tools>
    {"type": "function", "function": {...}}
    </tools>

Replies are parsed for `<tool_call>{json}</tool_call>` blocks naming an offered function; the
text around them becomes the message content.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from typing import Any

from tunewright.chat import prompt_ids

_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*(?:</tool_call>|$)", re.DOTALL)


def tool_prompt(tools: list[dict[str, Any]]) -> str:
    listed = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return (
        "You can call functions. To call one, reply with exactly\n<tool_call>\n"
        '{"name": "<function name>", "arguments": {<arguments as JSON>}}\n</tool_call>\n'
        f"Functions (JSON schemas):\n<tools>\n{listed}\n</tools>"
    )


def prompt_with_tools(
    tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[int]:
    """Prompt ids with `tools` offered: through the template if it knows tools, else Hermes."""
    if _template_knows_tools(tokenizer, tools):
        return prompt_ids(tokenizer, messages, tools=tools)
    hermes = [_hermes_message(m) for m in messages]
    prompt = tool_prompt(tools)
    if hermes and hermes[0]["role"] == "system":
        system = hermes[0]
        content = f"{prompt}\n\n{system['content']}" if system["content"] else prompt
        hermes = [{**system, "content": content}, *hermes[1:]]
    else:
        hermes = [{"role": "system", "content": prompt}, *hermes]
    return prompt_ids(tokenizer, hermes)


def parse_tool_calls(text: str, names: set[str]) -> tuple[str | None, list[dict[str, Any]]]:
    """(content, OpenAI tool_calls) of a reply; blocks that are not a valid call to an offered
    function stay in the content."""
    calls, kept, at = [], [], 0
    for match in _CALL.finditer(text):
        call = _call(match.group(1), names)
        if call is None:
            continue
        kept.append(text[at : match.start()])
        at = match.end()
        calls.append(call)
    kept.append(text[at:])
    content = "".join(kept).strip()
    return (content or None) if calls else text, calls


def _call(body: str, names: set[str]) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments", {})
    if not isinstance(arguments, dict):
        return None
    return {
        "id": f"call_{secrets.token_hex(12)}",
        "type": "function",
        "function": {"name": value["name"], "arguments": json.dumps(arguments)},
    }


def _template_knows_tools(tokenizer: Any, tools: list[dict[str, Any]]) -> bool:
    try:
        return "tools" in tokenizer.get_chat_template(None, tools)
    except ValueError:  # no usable template: prompt_ids reports it
        return False


def _hermes_message(message: dict[str, Any]) -> dict[str, Any]:
    calls = message.get("tool_calls")
    if not calls:
        return {k: v for k, v in message.items() if k != "tool_call_id"}
    blocks = [
        f"<tool_call>\n{json.dumps(_call_object(c), ensure_ascii=False)}\n</tool_call>"
        for c in calls
    ]
    text = "\n".join([message["content"], *blocks] if message.get("content") else blocks)
    return {"role": message["role"], "content": text}


def _call_object(call: dict[str, Any]) -> dict[str, Any]:
    function = call["function"]
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        # Invalid JSON is kept as given: the model should still see what was sent.
        with contextlib.suppress(json.JSONDecodeError):
            arguments = json.loads(arguments)
    return {"name": function.get("name"), "arguments": arguments}
