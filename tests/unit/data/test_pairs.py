"""Preference pairs and binary feedback: every shape other tools write is detected and
normalised, checked with reasons, split and leak-checked by prompt, and exported to OpenAI DPO
and TRL so that reading the export back gives the same records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.unit.data.test_formats import write

from tunewright.data.checks import check_records, find_leaks, near_duplicate_groups, prompt_groups
from tunewright.data.export import export_records
from tunewright.data.load import iter_rows
from tunewright.data.normalize import (
    RowError,
    apply_columns,
    detect_format,
    detect_shape,
    normalize_row,
)
from tunewright.data.records import (
    expected_answer,
    full_text,
    location,
    make_record,
    prompt_messages,
)
from tunewright.data.split import join_groups, split_records

SKY = "What colour is the sky on a clear day, and why?"
BLUE = "It is blue: air scatters short blue wavelengths of sunlight far more than red ones."
GREEN = "It is green, because the sky reflects the colour of the grass below it."


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


# One real-looking row per shape, and the record it must become: (prompt, chosen, rejected).
HH_PROMPT = [
    user("What are some good ways to fall asleep faster?"),
    assistant("Keeping a regular schedule helps a lot. Do you have trouble most nights?"),
    user("Yes, almost every night."),
]
HH_CHOSEN = "Try a dark, cool room, no screens for an hour before bed, and no caffeine after noon."
HH_REJECTED = "Just take a few sleeping pills every night, that always works."
PAIRS: dict[str, tuple[dict, tuple[list[dict], str, str]]] = {
    "preference/trl": (
        {"prompt": SKY, "chosen": BLUE, "rejected": GREEN},
        ([user(SKY)], BLUE, GREEN),
    ),
    "preference/trl-conversational": (
        {
            "prompt": [{"role": "system", "content": "Answer like a physics teacher."}, user(SKY)],
            "chosen": [assistant(BLUE)],
            "rejected": [assistant(GREEN)],
        },
        ([{"role": "system", "content": "Answer like a physics teacher."}, user(SKY)], BLUE, GREEN),
    ),
    "preference/trl-implicit": (
        {"chosen": [user(SKY), assistant(BLUE)], "rejected": [user(SKY), assistant(GREEN)]},
        ([user(SKY)], BLUE, GREEN),
    ),
    "preference/sharegpt": (  # LLaMA-Factory's dpo_en_demo.json
        {
            "conversations": [{"from": "human", "value": SKY}],
            "chosen": {"from": "gpt", "value": BLUE},
            "rejected": {"from": "gpt", "value": GREEN},
        },
        ([user(SKY)], BLUE, GREEN),
    ),
    "preference/openai-dpo": (  # the example in OpenAI's DPO guide
        {
            "input": {
                "messages": [user("Hello, can you tell me how cold San Francisco is today?")],
                "tools": [],
                "parallel_tool_calls": True,
            },
            "preferred_output": [
                assistant(
                    "Today in San Francisco, it is not quite cold as expected. Morning clouds "
                    "will give away to sunshine, with a high near 68°F (20°C)."
                )
            ],
            "non_preferred_output": [
                assistant("It is not particularly cold in San Francisco today.")
            ],
        },
        (
            [user("Hello, can you tell me how cold San Francisco is today?")],
            "Today in San Francisco, it is not quite cold as expected. Morning clouds will give "
            "away to sunshine, with a high near 68°F (20°C).",
            "It is not particularly cold in San Francisco today.",
        ),
    ),
    "preference/hh": (  # Anthropic HH-RLHF: whole transcripts sharing the prompt
        {
            "chosen": "\n\nHuman: What are some good ways to fall asleep faster?\n\nAssistant: "
            "Keeping a regular schedule helps a lot. Do you have trouble most nights?\n\n"
            f"Human: Yes, almost every night.\n\nAssistant: {HH_CHOSEN}",
            "rejected": "\n\nHuman: What are some good ways to fall asleep faster?\n\nAssistant: "
            "Keeping a regular schedule helps a lot. Do you have trouble most nights?\n\n"
            f"Human: Yes, almost every night.\n\nAssistant: {HH_REJECTED}",
        },
        (HH_PROMPT, HH_CHOSEN, HH_REJECTED),
    ),
}

SPAM = "Write a subject line for our newsletter about the spring sale."
GOOD = "Spring sale: 30% off everything in the garden shop until Sunday"
BAD = "!!!! CLICK NOW !!!! FREE MONEY !!!! LIMITED !!!!"
# Feedback rows: (row, the conversation before the judged answer, the answer, label).
FEEDBACK: dict[str, tuple[dict, tuple[list[dict], str, bool]]] = {
    "feedback/messages": (  # LLaMA-Factory's kto_en_demo.json
        {"messages": [user(SPAM), assistant(BAD)], "label": False},
        ([user(SPAM)], BAD, False),
    ),
    "feedback/sharegpt": (
        {
            "conversations": [{"from": "human", "value": SPAM}, {"from": "gpt", "value": GOOD}],
            "label": True,
        },
        ([user(SPAM)], GOOD, True),
    ),
    "feedback/trl": (  # TRL's unpaired preference, standard
        {"prompt": SPAM, "completion": GOOD, "label": True},
        ([user(SPAM)], GOOD, True),
    ),
    "feedback/trl-conversational": (
        {"prompt": [user(SPAM)], "completion": [assistant(BAD)], "label": False},
        ([user(SPAM)], BAD, False),
    ),
}


@pytest.mark.parametrize("shape", list(PAIRS))
def test_each_preference_shape_becomes_a_pair(shape):
    row, (prompt, chosen, rejected) = PAIRS[shape]
    assert detect_shape(row) == shape
    assert detect_format(row) == "preference"
    record = normalize_row(row, shape, "pairs.jsonl", 7)
    assert record["task"] == "preference"
    assert (record["messages"], record["chosen"], record["rejected"]) == (prompt, chosen, rejected)
    assert record["source"] == {"file": "pairs.jsonl", "line": 7}
    assert check_records([record]) == []
    # Declared as `preference`, the shape is still told from the row.
    assert normalize_row(row, "preference", "pairs.jsonl", 7) == record


@pytest.mark.parametrize("shape", list(FEEDBACK))
def test_each_feedback_shape_becomes_a_judged_answer(shape):
    row, (prompt, answer, label) = FEEDBACK[shape]
    assert detect_shape(row) == shape
    record = normalize_row(row, shape, "kto.jsonl", 3)
    assert record["task"] == "feedback" and record["label"] is label
    assert record["messages"] == [*prompt, {**assistant(answer), "weight": int(label)}]
    assert prompt_messages(record) == prompt
    # An undesirable answer is nobody's reference in evaluation.
    assert expected_answer(record) == (answer if label else None)
    assert normalize_row(row, "feedback", "kto.jsonl", 3) == record


def test_only_the_judged_answer_of_feedback_can_carry_loss():
    row = {
        "messages": [
            user("Hi, I need help with my order."),
            {"role": "assistant", "content": "Sure, what is the order number?", "weight": 1},
            user("It is 4417."),
            assistant("Order 4417 shipped yesterday and arrives on Friday."),
        ],
        "label": True,
    }
    record = normalize_row(row, detect_shape(row), "f", 1)
    assert [m.get("weight") for m in record["messages"]] == [None, 0, None, 1]


def test_ultrafeedback_rows_take_the_prompt_from_the_conversations():
    # A text prompt beside whole conversations (HuggingFaceH4/ultrafeedback_binarized).
    row = {
        "prompt": SKY,
        "chosen": [user(SKY), assistant(BLUE)],
        "rejected": [user(SKY), assistant(GREEN)],
        "score_chosen": 9.0,
    }
    assert detect_shape(row) == "preference/trl-implicit"
    record = normalize_row(row, "preference/trl-implicit", "f", 1)
    assert (record["messages"], record["chosen"], record["rejected"]) == ([user(SKY)], BLUE, GREEN)


def test_sharegpt_pairs_with_role_objects_and_a_system_prompt():
    row = {
        "system": "You are terse.",
        "conversations": [
            {"from": "human", "value": "Name a prime."},
            {"from": "gpt", "value": "Which range?"},
            {"from": "human", "value": "Under ten."},
        ],
        "chosen": {"role": "assistant", "content": "Seven."},
        "rejected": {"role": "assistant", "content": "Nine."},
    }
    record = normalize_row(row, detect_shape(row), "f", 1)
    assert record["messages"] == [
        {"role": "system", "content": "You are terse."},
        user("Name a prime."),
        assistant("Which range?"),
        user("Under ten."),
    ]
    assert (record["chosen"], record["rejected"]) == ("Seven.", "Nine.")


def test_answers_that_are_json_text_stay_text():
    row = {"prompt": "Reply with a JSON object.", "chosen": '{"ok": true}', "rejected": "[1, 2]"}
    record = normalize_row(row, detect_shape(row), "f", 1)
    assert (record["chosen"], record["rejected"]) == ('{"ok": true}', "[1, 2]")


@pytest.mark.parametrize("kind", ["csv", "parquet", "json"])
@pytest.mark.parametrize("shape", [*PAIRS, *FEEDBACK])
def test_shapes_read_the_same_from_csv_parquet_and_json(tmp_path, shape, kind):
    row = (PAIRS | FEEDBACK)[shape][0]
    if kind == "parquet" and shape == "preference/openai-dpo":
        row = {**row, "input": {"messages": row["input"]["messages"]}}  # no empty list column
    suffix = {"csv": ".csv", "parquet": ".parquet", "json": ".json"}[kind]
    read = [_records(write(tmp_path / f"d{suffix}", [row, row], kind))]
    read.append(_records(write(tmp_path / "ref.jsonl", [row, row], "jsonl")))
    strip = [[{k: v for k, v in r.items() if k != "source"} for r in rs] for rs in read]
    assert strip[0] == strip[1]
    assert {r["task"] for r in read[0]} == {shape.split("/")[0]}


def _records(path: Path) -> list[dict]:
    out = []
    for row in iter_rows(path):
        assert row.error is None, row.error
        out.append(normalize_row(row.data, detect_shape(row.data), row.file, row.line))
    return out


def test_a_chat_row_with_a_label_is_never_read_as_chat():
    row = {"messages": [user(SPAM), assistant(BAD)], "label": False}
    assert detect_format(row) == "feedback"
    with pytest.raises(RowError, match=r"binary feedback.*data\.format: feedback"):
        normalize_row(row, "openai", "f", 1)
    sharegpt = {"conversations": [{"from": "human", "value": SPAM}], "label": "false"}
    with pytest.raises(RowError, match="binary feedback"):
        normalize_row(sharegpt, "sharegpt", "f", 1)


def test_a_label_that_is_not_feedback_can_be_renamed_away():
    row = {
        "messages": [user("My parcel is late."), assistant("Sorry! It ships today.")],
        "label": "billing",
    }
    with pytest.raises(
        RowError, match=r"got 'billing'; .*data\.columns, e\.g\. \{category: label\}"
    ):
        normalize_row(row, detect_shape(row), "f", 1)
    renamed = apply_columns(row, {"category": "label"})
    assert detect_shape(renamed) == "openai"
    assert normalize_row(renamed, "openai", "f", 1)["task"] == "chat"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": SPAM, "completion": GOOD, "label": "yes"}, "must be true or false"),
        ({"prompt": SPAM, "completion": GOOD, "label": 1}, "got 1"),
        ({"messages": [user(SPAM), assistant(GOOD)], "label": None}, "got None"),
        ({"messages": [user(SPAM)], "label": True}, "must be the last turn.*got user"),
        (
            {
                "chosen": [user(SKY), assistant(BLUE), user("And at night?"), assistant("Black.")],
                "rejected": [user(SKY), assistant(GREEN)],
            },
            "field 'chosen': after the 1 turns both sides share.*3 turns",
        ),
        ({"chosen": "Intro\n\nHuman: hi\n\nAssistant: yo", "rejected": "x"}, "before the first"),
        (
            {"input": "not an object", "preferred_output": [], "non_preferred_output": []},
            "field 'input' must be an object",
        ),
        (
            {"prompt": [user(SKY)], "chosen": [user(SKY)], "rejected": [assistant(GREEN)]},
            "field 'chosen' has no assistant message",
        ),
    ],
)
def test_rows_that_do_not_fit_their_shape_name_the_field(row, message):
    with pytest.raises(RowError, match=message):
        normalize_row(row, detect_shape(row), "f", 1)


def test_declared_format_with_no_fitting_shape_lists_the_shapes():
    with pytest.raises(RowError, match="no preference shape fits columns \\['answer', 'question'"):
        normalize_row({"question": SKY, "answer": BLUE}, "preference", "f", 1)


# ---------------------------------------------------------------------------------------------
# Checks


def pair(prompt: str | None, chosen: str, rejected: str, line: int = 1) -> dict:
    messages = [] if prompt is None else [user(prompt)]
    return make_record(messages, "preference", "p.jsonl", line, chosen=chosen, rejected=rejected)


@pytest.mark.parametrize(
    ("record", "check", "detail"),
    [
        (pair(SKY, BLUE, BLUE), "identical_pair", "chosen and rejected answers are identical"),
        (pair(SKY, BLUE, f"  {BLUE}\n"), "identical_pair", "identical"),
        (pair(SKY, " ", GREEN), "empty_output", "chosen answer is empty"),
        (pair(SKY, BLUE, ""), "empty_output", "rejected answer is empty"),
        (pair(SKY, "", ""), "empty_output", "chosen and rejected answers are empty"),
        (pair(None, BLUE, GREEN), "missing_prompt", "no prompt"),
        (pair("   ", BLUE, GREEN), "missing_prompt", "no prompt"),
    ],
)
def test_pair_checks_reject_with_a_reason_and_location(record, check, detail):
    found = check_records([record])
    assert [(f.check, f.location) for f in found] == [(check, "p.jsonl:1")]
    assert detail in found[0].detail


def test_hh_transcripts_without_a_human_turn_have_no_prompt():
    row = {"chosen": "It is blue.", "rejected": "It is green."}
    record = normalize_row(row, detect_shape(row), "hh.jsonl", 4)
    assert [(f.check, f.location) for f in check_records([record])] == [
        ("missing_prompt", "hh.jsonl:4")
    ]


def test_a_pair_whose_prompt_ends_on_an_answer_is_a_bad_conversation():
    record = make_record(
        [user(SKY), assistant(BLUE)], "preference", "p", 2, chosen=BLUE, rejected=GREEN
    )
    (finding,) = check_records([record])
    assert finding.check == "bad_conversation"
    assert "the prompt's last turn is assistant, not user" in finding.detail


def test_feedback_checks():
    empty = normalize_row(
        {"prompt": SPAM, "completion": " ", "label": True}, "feedback/trl", "k", 1
    )
    no_prompt = normalize_row(
        {"prompt": "", "completion": GOOD, "label": True}, "feedback/trl", "k", 2
    )
    found = check_records([empty, no_prompt])
    assert [(f.check, f.location, f.detail) for f in found] == [
        ("empty_output", "k:1", "judged answer is empty"),
        ("missing_prompt", "k:2", "no prompt: no user turn with text before the answers"),
    ]


def test_pairs_sharing_a_prompt_are_not_duplicates_but_repeated_pairs_are():
    records = [pair(SKY, BLUE, GREEN, 1), pair(SKY, BLUE, "Purple.", 2), pair(SKY, BLUE, GREEN, 3)]
    assert full_text(records[0]) != full_text(records[1])
    found = [(f.check, f.location, f.other) for f in check_records(records, min_words=0)]
    assert found == [("exact_duplicate", "p.jsonl:3", "p.jsonl:1")]


# ---------------------------------------------------------------------------------------------
# Split and leakage by prompt


def prompt_of(n: int) -> str:
    return f"Question {n}: what is {n} times {n + 3}, and how would you check the result?"


def many_pairs(prompts: int, per_prompt: int) -> list[dict]:
    """`per_prompt` pairs for each prompt, with different answers, interleaved as files are."""
    return [
        pair(prompt_of(n), f"{n * (n + 3)}: checked by {k} methods", f"I think {n + k}", line)
        for line, (k, n) in enumerate(
            ((k, n) for k in range(per_prompt) for n in range(prompts)), start=1
        )
    ]


def test_split_keeps_every_prompt_on_one_side():
    records = many_pairs(prompts=40, per_prompt=3)
    groups = join_groups(near_duplicate_groups(records), prompt_groups(records))
    assert len(set(groups)) == 40
    train, evaluation = split_records(records, 0.2, seed=5, groups=groups)
    prompts = [{records[i]["messages"][0]["content"] for i in side} for side in (train, evaluation)]
    assert prompts[0] and prompts[1] and not prompts[0] & prompts[1]
    assert len(evaluation) == 24  # 8 prompts of 3 pairs
    # Without the prompt groups the same split would break prompts apart.
    plain = split_records(records, 0.2, seed=5, groups=near_duplicate_groups(records))
    halves = [{records[i]["messages"][0]["content"] for i in side} for side in plain]
    assert halves[0] & halves[1]


def test_prompt_groups_leave_other_tasks_alone():
    chat = make_record([user(SKY), assistant(BLUE)], "chat", "c", 1)
    records = [chat, pair(SKY, BLUE, GREEN, 2), dict(chat), pair(SKY + "  ", GREEN, BLUE, 4)]
    assert prompt_groups(records) == [0, 1, 2, 1]


def test_join_groups_links_through_either_grouping():
    assert join_groups([0, 1, 1, 3, 4], [0, 1, 2, 0, 2]) == [0, 1, 1, 0, 1]
    assert join_groups([]) == []


def test_an_eval_pair_whose_prompt_was_trained_on_leaks():
    train = [pair(prompt_of(n), BLUE, GREEN, n) for n in range(1, 6)]
    evaluation = [
        pair(prompt_of(3), "Completely different answer here.", "Another one.", 1),
        pair(prompt_of(99), "Blue, mostly.", "Green, mostly.", 2),
    ]
    for record in evaluation:
        record["source"]["file"] = "eval.jsonl"
    found = find_leaks(train, evaluation)
    assert [(f.location, f.other, f.detail) for f in found] == [
        ("eval.jsonl:1", "p.jsonl:3", "exact duplicate of a train prompt")
    ]


# ---------------------------------------------------------------------------------------------
# Export


@pytest.mark.parametrize("shape", list(PAIRS))
@pytest.mark.parametrize("target", ["openai-dpo", "trl"])
def test_pairs_export_and_read_back_unchanged(tmp_path, shape, target):
    record = normalize_row(PAIRS[shape][0], shape, "f", 1)
    row = exported(record, target, tmp_path)
    expected = {"openai-dpo": "preference/openai-dpo", "trl": "preference/trl-conversational"}
    assert detect_shape(row) == expected[target]
    assert normalize_row(row, detect_shape(row), "f", 1) == record


def test_trl_export_shapes(tmp_path):
    record = normalize_row(FEEDBACK["feedback/messages"][0], "feedback/messages", "f", 1)
    row = exported(record, "trl", tmp_path)
    # KTOTrainer's unpaired shape: no weights, the label as a boolean.
    assert row == {"prompt": [user(SPAM)], "completion": [assistant(BAD)], "label": False}
    assert normalize_row(row, detect_shape(row), "f", 1) == record
    weather = {"type": "function", "function": {"name": "weather", "parameters": {}}}
    pair_row = exported({**pair(SKY, BLUE, GREEN), "tools": [weather]}, "trl", tmp_path)
    assert pair_row == {
        "prompt": [user(SKY)],
        "chosen": [assistant(BLUE)],
        "rejected": [assistant(GREEN)],
        "tools": [weather],
    }


def exported(record: dict, target: str, folder: Path) -> dict:
    """The one row `target` holds for `record`."""
    path = folder / f"{target}.jsonl"
    assert export_records([record], target, path) == []  # type: ignore[arg-type]
    (row,) = [json.loads(line) for line in path.read_text().splitlines()]
    return row


def test_feedback_to_openai_keeps_its_undesirable_answer_at_weight_zero(tmp_path):
    record = normalize_row(FEEDBACK["feedback/messages"][0], "feedback/messages", "f", 1)
    row = exported(record, "openai", tmp_path)
    assert row["messages"][-1] == {**assistant(BAD), "weight": 0}


@pytest.mark.parametrize(
    ("target", "record", "reason"),
    [
        ("openai", pair(SKY, BLUE, GREEN), "export pairs with openai-dpo or trl"),
        ("alpaca", pair(SKY, BLUE, GREEN), "export pairs with openai-dpo or trl"),
        ("sharegpt", pair(SKY, BLUE, GREEN), "export pairs with openai-dpo or trl"),
        (
            "alpaca",
            normalize_row(FEEDBACK["feedback/trl"][0], "feedback/trl", "f", 1),
            "export feedback with trl",
        ),
        (
            "sharegpt",
            normalize_row(FEEDBACK["feedback/trl"][0], "feedback/trl", "f", 1),
            "export feedback with trl",
        ),
        (
            "openai-dpo",
            normalize_row(FEEDBACK["feedback/trl"][0], "feedback/trl", "f", 1),
            "DPO needs preference data",
        ),
        ("trl", make_record([user(SKY), assistant(BLUE)], "chat", "f", 1), "use --to openai"),
    ],
)
def test_targets_refuse_what_they_cannot_hold(tmp_path, target, record, reason):
    skipped = export_records([record], target, tmp_path / "out")
    assert [s["source"] for s in skipped] == [location(record)]
    assert reason in skipped[0]["reason"]
