"""Hermes tool calls: parsed out of replies into OpenAI's shape; anything else stays text."""

from __future__ import annotations

import json

from tunewright.serving.errors import _param
from tunewright.serving.tools import parse_tool_calls, tool_prompt

NAMES = {"get_weather", "ping"}


def test_calls_are_parsed_and_the_rest_is_content() -> None:
    text = (
        "Let me check.\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>{"name": "ping", "arguments": {}}</tool_call>'
    )
    content, calls = parse_tool_calls(text, NAMES)
    assert content == "Let me check."
    assert [c["function"]["name"] for c in calls] == ["get_weather", "ping"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Paris"}
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    assert calls[0]["id"] != calls[1]["id"]


def test_a_call_cut_off_before_its_closing_tag_still_counts() -> None:
    _, calls = parse_tool_calls('<tool_call>\n{"name": "ping", "arguments": {}}', NAMES)
    assert len(calls) == 1


def test_unknown_functions_and_broken_json_stay_text() -> None:
    for text in (
        '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "ping", "arguments": </tool_call>',
        '<tool_call>{"name": "ping", "arguments": [1]}</tool_call>',
        "no calls here",
    ):
        assert parse_tool_calls(text, NAMES) == (text, [])


def test_the_tool_prompt_lists_each_tool_as_json() -> None:
    tools = [{"type": "function", "function": {"name": "ping"}}]
    prompt = tool_prompt(tools)
    assert "<tool_call>" in prompt and json.dumps(tools[0]) in prompt


def test_error_params_never_repeat_made_up_keys() -> None:
    assert _param(("body", "messages", 0, "content", "str")) == "messages[0].content"
    assert _param(("body", "<script>", 0)) == "<key>[0]"
    assert _param(("body", "stream_options", "x y")) == "stream_options.<key>"
