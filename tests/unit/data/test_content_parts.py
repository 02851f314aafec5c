"""Issue 15, item 2: message content written as parts in other trainers' shapes, and per-message
loss weights under either name, are read; any other shape is refused naming the field, not
reported as an empty answer or a broken conversation."""

from __future__ import annotations

import pytest

from tunewright.data.checks import check_records
from tunewright.data.normalize import RowError, normalize_row

QUESTION = "What is the capital of Norway, and why is it there?"
ANSWER = "Oslo is the capital; it grew at the head of a sheltered fjord."


def parts(key: str, text: str, **extra) -> list[dict]:
    return [{"type": "text", key: text, **extra}]


@pytest.mark.parametrize("key", ["text", "value", "content"])
def test_text_parts_are_read_under_each_common_key(key):
    row = {
        "messages": [
            {"role": "user", "content": parts(key, QUESTION)},
            {"role": "assistant", "content": parts(key, ANSWER)},
        ]
    }
    record = normalize_row(row, "openai", "f.jsonl", 3)
    assert [m["content"] for m in record["messages"]] == [QUESTION, ANSWER]
    # Before the fix a `value` part read as "": empty_output and bad_conversation on every row.
    assert check_records([record]) == []


def test_parts_without_a_type_and_several_parts_are_joined():
    content = [{"text": "Oslo is the capital; "}, {"type": "text", "value": "it sits on a fjord."}]
    row = {
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": content},
        ]
    }
    record = normalize_row(row, "openai", "f.jsonl", 1)
    assert record["messages"][1]["content"] == "Oslo is the capital; it sits on a fjord."


def test_sharegpt_values_written_as_parts_are_read():
    row = {
        "conversations": [
            {"from": "human", "value": parts("value", QUESTION)},
            {"from": "gpt", "value": ANSWER},
        ]
    }
    record = normalize_row(row, "sharegpt", "f.jsonl", 1)
    assert record["messages"][0]["content"] == QUESTION


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            [{"type": "text", "body": ANSWER}],
            "messages[1].content[0] has no text field (keys: type, body)",
        ),
        (
            [{"type": "text", "text": ANSWER}, {"type": "text", "value": None}],
            "messages[1].content[1].value must be text, got NoneType",
        ),
        (["Oslo"], "messages[1].content[0] must be an object, got str"),
        ([{"type": "image_url"}], "messages[1].content[0]: only text parts are supported"),
    ],
)
def test_unreadable_parts_are_refused_naming_the_field(content, message):
    row = {
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": content},
        ]
    }
    with pytest.raises(RowError) as raised:
        normalize_row(row, "openai", "f.jsonl", 1)
    assert message in str(raised.value)


@pytest.mark.parametrize("key", ["weight", "loss_weight"])
@pytest.mark.parametrize("value", [0, 1, True, 0.0])
def test_loss_weight_is_read_under_either_name(key, value):
    row = {
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": ANSWER, key: value},
        ]
    }
    record = normalize_row(row, "openai", "f.jsonl", 1)
    assert record["messages"][1] == {"role": "assistant", "content": ANSWER, "weight": int(value)}


def test_sharegpt_turn_weights_are_kept():
    row = {
        "conversations": [
            {"from": "human", "value": QUESTION},
            {"from": "gpt", "value": "Bergen.", "loss_weight": 0},
            {"from": "human", "value": "Are you sure?"},
            {"from": "gpt", "value": ANSWER},
        ]
    }
    record = normalize_row(row, "sharegpt", "f.jsonl", 1)
    assert [m.get("weight") for m in record["messages"]] == [None, 0, None, None]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # Read as it is, "0" (not 0) would be trained on: chat.py masks only weight 0.
        ({"weight": "0"}, "messages[1].weight must be 0 or 1, got '0'"),
        ({"loss_weight": 0.5}, "messages[1].loss_weight must be 0 or 1, got 0.5"),
        ({"weight": 1, "loss_weight": 0}, "messages[1]: weight and loss_weight disagree"),
    ],
)
def test_bad_weights_are_refused_naming_the_field(extra, message):
    row = {
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": ANSWER, **extra},
        ]
    }
    with pytest.raises(RowError) as raised:
        normalize_row(row, "openai", "f.jsonl", 1)
    assert message in str(raised.value)


def test_an_empty_answer_names_its_turn():
    row = {
        "messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": " "}]
    }
    [finding] = check_records([normalize_row(row, "openai", "f.jsonl", 4)])
    assert (finding.check, finding.location) == ("empty_output", "f.jsonl:4")
    assert finding.detail == "assistant answer is empty (message 2)"
