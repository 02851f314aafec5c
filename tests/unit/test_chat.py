"""chat.py on the tiny tokenizer: loss masks, generation prompts, lengths, markup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tunewright.chat import (
    IGNORE_INDEX,
    ChatTemplateError,
    LossMaskError,
    Rendered,
    prompt_ids,
    render_example,
    render_markup,
    token_lengths,
    verify_loss_mask,
)
from tunewright.errors import TunewrightError

# ChatML that injects a default system prompt when the first message is not system (SmolLM2's).
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Rewrites history: the header counts all messages, so a turn rendered alone differs.
COUNTER_TEMPLATE = (
    "{{ messages | length }} messages\n"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Rewrites history: without a generation prompt, renders only the last message's content.
LAST_ONLY_TEMPLATE = (
    "{% if add_generation_prompt %}{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{{ '<|im_start|>assistant\n' }}"
    "{% else %}{{ messages[-1]['content'] }}{% endif %}"
)
# Renders tool calls and schemas itself, in Qwen-style tags.
NATIVE_TOOLS_TEMPLATE = (
    "{% if tools %}{{ '<|im_start|>system\nTools: ' + (tools | tojson) + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}"
    "{% for call in message.get('tool_calls') or [] %}"
    "{{ '<call>' + call['function']['name'] + '</call>' }}{% endfor %}"
    "{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# No special end-of-turn token: the model could never learn to stop.
PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)

SINGLE = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
]
MULTI = [
    {"role": "user", "content": "Translate to French: good morning."},
    {"role": "assistant", "content": "Bonjour."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
]
TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
TOOL_CHAT = [
    {"role": "user", "content": "add 1 and 2"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"x": 1}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "3"},
    {"role": "assistant", "content": "The answer is 3."},
]


@pytest.fixture
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def labelled_runs(tokenizer: Any, rendered: Rendered) -> list[str]:
    """Decoded text of each contiguous run of labelled tokens."""
    runs: list[list[int]] = []
    previous = IGNORE_INDEX
    for label in rendered.labels:
        if label != IGNORE_INDEX:
            if previous == IGNORE_INDEX:
                runs.append([])
            runs[-1].append(label)
        previous = label
    return [tokenizer.decode(run, skip_special_tokens=False) for run in runs]


def test_single_turn_labels_only_the_answer_and_end_of_turn(tokenizer: Any) -> None:
    rendered = render_example(tokenizer, SINGLE)

    assert labelled_runs(tokenizer, rendered) == ["The capital of France is Paris.<|im_end|>"]
    assert rendered.full_length == len(rendered.input_ids) == len(rendered.labels)
    first, last = rendered.assistant_spans[0]
    assert rendered.labels[first:last] == rendered.input_ids[first:last]
    # The newline after <|im_end|> is template, not answer.
    assert tokenizer.decode(rendered.input_ids[last:]) == "\n"


def test_multi_turn_labels_every_answer_and_no_prompt(tokenizer: Any) -> None:
    rendered = render_example(tokenizer, MULTI)

    assert labelled_runs(tokenizer, rendered) == ["Bonjour.<|im_end|>", "Paris.<|im_end|>"]
    assert len(rendered.assistant_spans) == 2
    verify_loss_mask(tokenizer, [SINGLE, MULTI])


def test_weight_zero_turn_is_in_spans_but_unlabelled(tokenizer: Any) -> None:
    messages = [dict(m) for m in MULTI]
    messages[1]["weight"] = 0

    rendered = render_example(tokenizer, messages)

    assert labelled_runs(tokenizer, rendered) == ["Paris.<|im_end|>"]
    assert len(rendered.assistant_spans) == 2
    verify_loss_mask(tokenizer, [messages])


def test_train_on_prompt_labels_every_token(tokenizer: Any) -> None:
    rendered = render_example(tokenizer, MULTI, train_on_prompt=True)

    assert rendered.labels == rendered.input_ids
    assert rendered.assistant_spans == render_example(tokenizer, MULTI).assistant_spans


def test_prompt_ids_end_with_the_generation_prompt(tokenizer: Any) -> None:
    header = tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]

    ids = prompt_ids(tokenizer, MULTI[:3])

    assert ids[-len(header) :] == header
    assert tokenizer.decode(ids).startswith("<|im_start|>user\nTranslate")
    # Generation starts exactly where training labels start.
    rendered = render_example(tokenizer, MULTI)
    assert rendered.input_ids[: len(ids)] == ids
    assert rendered.assistant_spans[1][0] == len(ids)


def test_truncation_clips_labels_and_spans_and_keeps_full_length(tokenizer: Any) -> None:
    full = render_example(tokenizer, MULTI)
    cut = full.assistant_spans[1][0] + 2  # two tokens into the second answer

    rendered = render_example(tokenizer, MULTI, max_seq_len=cut)

    assert len(rendered.input_ids) == len(rendered.labels) == cut
    assert rendered.full_length == full.full_length > cut
    assert rendered.assistant_spans == [full.assistant_spans[0], (cut - 2, cut)]
    assert rendered.labels == full.labels[:cut]
    assert render_example(tokenizer, MULTI, max_seq_len=10**6) == full


@pytest.mark.parametrize("template", [COUNTER_TEMPLATE, LAST_ONLY_TEMPLATE])
def test_template_that_rewrites_history_is_refused(tokenizer: Any, template: str) -> None:
    tokenizer.chat_template = template

    with pytest.raises(LossMaskError) as caught:
        verify_loss_mask(tokenizer, [MULTI])

    assert "renders earlier turns differently" in str(caught.value)
    assert "model.chat_template" in (caught.value.hint or "")
    assert isinstance(caught.value, TunewrightError)


def test_default_system_prompt_injection_is_prompt(tokenizer: Any) -> None:
    tokenizer.chat_template = SMOLLM2_TEMPLATE
    opening_answer = [{"role": "assistant", "content": "Plain text trains on every word."}]

    rendered = render_example(tokenizer, MULTI)
    text_record = render_example(tokenizer, opening_answer)

    assert "You are a helpful assistant." in tokenizer.decode(rendered.input_ids)
    assert labelled_runs(tokenizer, rendered) == ["Bonjour.<|im_end|>", "Paris.<|im_end|>"]
    # The opening turn's prompt is not a prefix (the system prompt appears only with messages).
    assert "You are a helpful" in tokenizer.decode(text_record.input_ids)
    assert labelled_runs(tokenizer, text_record) == ["Plain text trains on every word.<|im_end|>"]
    verify_loss_mask(tokenizer, [MULTI, opening_answer, SINGLE])


def test_tool_calls_become_json_when_the_template_lacks_tools(tokenizer: Any) -> None:
    rendered = render_example(tokenizer, TOOL_CHAT, tools=TOOLS)

    text = tokenizer.decode(rendered.input_ids)
    call = json.dumps([{"name": "add", "arguments": {"x": 1}}])
    assert labelled_runs(tokenizer, rendered) == [f"{call}<|im_end|>", "The answer is 3.<|im_end|>"]
    assert text.startswith('<|im_start|>system\nYou can call these tools:\n[{"type": "function"')
    assert "<|im_start|>tool\n3<|im_end|>" in text
    verify_loss_mask(tokenizer, [TOOL_CHAT], tools=[TOOLS])


def test_tool_calls_rendered_by_the_template(tokenizer: Any) -> None:
    tokenizer.chat_template = NATIVE_TOOLS_TEMPLATE

    rendered = render_example(tokenizer, TOOL_CHAT, tools=TOOLS)

    assert labelled_runs(tokenizer, rendered)[0] == "<call>add</call><|im_end|>"
    assert '"name": "add"' in tokenizer.decode(rendered.input_ids[: rendered.assistant_spans[0][0]])
    verify_loss_mask(tokenizer, [TOOL_CHAT], tools=[TOOLS])


def test_template_without_end_of_turn_token_fails_verification(tokenizer: Any) -> None:
    tokenizer.chat_template = PLAIN_TEMPLATE

    with pytest.raises(LossMaskError, match="no end-of-turn token"):
        verify_loss_mask(tokenizer, [SINGLE])


def test_missing_template_is_a_user_error(tokenizer: Any) -> None:
    tokenizer.chat_template = None

    with pytest.raises(ChatTemplateError, match="no usable chat template"):
        render_example(tokenizer, SINGLE)


def test_template_failure_is_a_user_error(tokenizer: Any) -> None:
    tokenizer.chat_template = "{{ raise_exception('Conversation roles must alternate') }}"

    with pytest.raises(ChatTemplateError, match=r"roles \[system, user, assistant\].*alternate"):
        render_example(tokenizer, SINGLE)


def test_token_lengths_match_render_example(tokenizer: Any) -> None:
    batch = [SINGLE, MULTI, TOOL_CHAT, [{"role": "assistant", "content": "日本 text"}]]
    tools = [None, None, TOOLS, None]

    lengths = token_lengths(tokenizer, batch, tools=tools)

    expected = [
        len(render_example(tokenizer, m, tools=t).input_ids)
        for m, t in zip(batch, tools, strict=True)
    ]
    assert lengths == expected
    assert token_lengths(tokenizer, []) == []


def test_render_markup_highlights_exactly_the_labelled_tokens(tokenizer: Any) -> None:
    from rich.text import Text

    rendered = render_example(tokenizer, [*SINGLE[:2], {"role": "assistant", "content": "[b]日本"}])

    markup = render_markup(tokenizer, rendered)

    text = Text.from_markup(markup)
    underlined = "".join(
        text.plain[span.start : span.end] for span in text.spans if "underline" in str(span.style)
    )
    assert underlined == "[b]日本<|im_end|>"  # rich markup in content is escaped, not applied
    assert "<|im_start|>" in text.plain and "↵\n" in text.plain
    # Boundaries: one box per token, except tokens holding part of one character (日 and 本).
    assert markup.count("[/]") < len(rendered.input_ids)
    assert markup.count("on grey27") > 10
