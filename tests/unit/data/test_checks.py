import pytest
from tests.unit.data.texts import text, words

from tunewright.data.checks import (
    CHECKS,
    REJECTING,
    WARNINGS,
    check_records,
    duplicate_index,
    find_leaks,
    label_distribution,
    minimum_count_warnings,
    near_duplicate_groups,
)
from tunewright.data.records import make_record


def qa(question: str, answer: str, line: int, task: str = "instruction", **extra):
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return make_record(messages, task, "f.jsonl", line, **extra)


def convo(messages: list[dict], line: int = 1, task: str = "chat", **extra):
    return make_record(messages, task, "f.jsonl", line, **extra)


def distinct(count: int, start_line: int = 1) -> list[dict]:
    """Unrelated, clean question/answer records."""
    return [
        qa(f"Question {line}: {text(8, 1000 + line)}?", text(30, 2000 + line), line)
        for line in range(start_line, start_line + count)
    ]


def only(findings, check):
    return [f for f in findings if f.check == check]


def test_check_sets_are_consistent():
    assert set(CHECKS) == REJECTING | WARNINGS
    assert not REJECTING & WARNINGS
    assert {"too_short", "near_duplicate", "placeholder"} == WARNINGS


def test_clean_records_have_no_findings():
    assert check_records(distinct(20)) == []


def test_empty_answer_is_reported_with_its_location():
    records = [*distinct(3), qa("What is two plus two?", "   \n", 7)]
    found = check_records(records)
    assert [(f.check, f.index, f.location) for f in found] == [("empty_output", 3, "f.jsonl:7")]


def test_tool_call_turn_with_empty_content_is_not_empty():
    call = {"id": "c1", "type": "function", "function": {"name": "now", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "What time is it?"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
    ]
    assert only(check_records([convo(messages, 3)]), "empty_output") == []


def test_preference_with_empty_chosen_is_empty_output():
    prompt = [{"role": "user", "content": "Name a colour of the sky at noon."}]
    record = make_record(prompt, "preference", "p.jsonl", 4, chosen=" ", rejected="Green.")
    found = check_records([record])
    assert [(f.check, f.location) for f in found] == [("empty_output", "p.jsonl:4")]


def test_short_answer_is_a_warning_but_short_labels_are_not():
    records = [
        qa("Is the sky blue?", "Yes it is.", 2),
        qa("Review: a joyless, dull film.", "negative", 3, task="classification", label="negative"),
    ]
    found = check_records(records)
    assert [(f.check, f.location, f.detail) for f in found] == [
        ("too_short", "f.jsonl:2", "answer has 3 words (< 5)")
    ]
    assert check_records(records, min_words=3) == []


def test_exact_duplicate_names_the_later_row_and_the_first():
    records = distinct(3)
    copy = qa(
        records[1]["messages"][0]["content"] + "  ",
        "\n" + records[1]["messages"][1]["content"].replace(" ", "   "),
        9,
    )
    found = check_records([*records, copy])
    assert [(f.check, f.index, f.location, f.other) for f in found] == [
        ("exact_duplicate", 3, "f.jsonl:9", "f.jsonl:2")
    ]


def edited(original: list[str], position: int, replacement: str = "zeppelin") -> str:
    changed = list(original)
    changed[position] = replacement
    return " ".join(changed)


def test_near_duplicate_finds_a_copy_with_one_word_changed_at_the_default():
    original = words(40, 1)
    records = [qa("Describe it.", " ".join(original), 1), *distinct(5, 10)]
    records.append(qa("Describe it.", edited(original, 20), 30))
    # Prompt and answer are 42 words, so 40 three-word shingles; one word changed mid-text
    # alters 3 of them: Jaccard 37/43 = 0.86, over the default 0.85.
    found = check_records(records)
    assert [(f.check, f.location, f.other, f.detail) for f in found] == [
        ("near_duplicate", "f.jsonl:30", "f.jsonl:1", "near-duplicate, similarity 0.86")
    ]
    assert check_records(records, near_duplicate_threshold=0.9) == []


def test_template_siblings_are_not_near_duplicates():
    # Same template, different numbers: five tokens differ, Jaccard 2/28.
    records = [
        qa(
            f"Question number {n}: what is {n} plus {n}?",
            f"The answer to question {n} is {2 * n}, computed carefully.",
            n,
        )
        for n in (12, 13)
    ]
    assert check_records(records) == []
    assert near_duplicate_groups(records) == [0, 1]


def test_near_duplicate_groups_link_exact_and_near_copies():
    original = words(40, 3)
    records = [
        qa("Describe it.", " ".join(original), 1),
        *distinct(2, 10),
        qa("Describe it.", " ".join(original) + " indeed", 20),
        qa("Describe it.", " ".join(original), 21),
    ]
    assert near_duplicate_groups(records) == [0, 1, 2, 0, 0]


def test_one_index_serves_the_checks_and_the_groups_of_the_rows_kept():
    # `data prepare` indexes every row once, checks them, then groups the rows it kept.
    original = words(40, 3)
    records = [
        qa("Describe it.", " ".join(original), 1),
        *distinct(3, 10),
        qa("Hello there?", "", 20),  # rejected: empty_output
        qa("Describe it.", edited(original, 20), 21),
        qa("Describe it.", " ".join(original), 22),  # rejected: exact_duplicate
    ]
    duplicates = duplicate_index(records, seed=5)
    found = check_records(records, seed=5, duplicates=duplicates)
    assert found == check_records(records, seed=5)
    rejected = {f.index for f in found if f.check in REJECTING}
    assert rejected == {4, 6}
    kept = [r for i, r in enumerate(records) if i not in rejected]
    groups = near_duplicate_groups(kept, seed=5, duplicates=duplicates)
    assert groups == near_duplicate_groups(kept, seed=5) == [0, 1, 2, 3, 0]


def test_an_index_built_with_another_seed_is_refused():
    records = distinct(3)
    with pytest.raises(ValueError, match="indexed with seed 1, not 0"):
        check_records(records, duplicates=duplicate_index(records, seed=1))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Caf\ufffd au lait is a coffee drink.", "U+FFFD replacement character at char 3"),
        ("CafÃ© au lait is a coffee drink.", 'mojibake "Ã©"'),
        ("It\u00e2\u20ac\u2122s a coffee drink with milk.", 'mojibake "â€™"'),
        ("Coffee\x07 with milk, served hot.", "control character U+0007 at char 6"),
    ],
)
def test_encoding_problems_are_found(content, expected):
    found = check_records([qa("What is café au lait?", content, 5)])
    assert [(f.check, f.location) for f in found] == [("encoding", "f.jsonl:5")]
    assert f"message 2 (assistant): {expected}" in found[0].detail


def test_correct_unicode_and_whitespace_are_not_encoding_problems():
    answer = "Café, naïve, Ångström, Straße, 東京 and 🙂 are fine.\n\tTabs and\r\nnewlines too."
    assert check_records([qa("Spell some words, please.", answer, 1)]) == []


SYSTEM = {"role": "system", "content": "Be brief."}
USER = {"role": "user", "content": "Hello there, how are you?"}
ASSISTANT = {"role": "assistant", "content": "I am well, thank you for asking."}


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([ASSISTANT, USER, ASSISTANT], "message 1: assistant at the start"),
        ([USER, SYSTEM, ASSISTANT], "message 2: system after user (expected assistant)"),
        ([USER, USER, ASSISTANT], "message 2: user after user"),
        ([USER, ASSISTANT, ASSISTANT], "message 3: assistant after assistant (expected user)"),
        ([USER, {"role": "tool", "content": "42"}, ASSISTANT], "message 2: tool after user"),
        ([USER, {"role": "robot", "content": "beep"}, ASSISTANT], "unknown role 'robot'"),
        ([{"role": "user", "content": "  "}, ASSISTANT], "message 1: empty user turn"),
        ([SYSTEM, USER], "no assistant turn"),
    ],
)
def test_bad_conversations_say_what_is_wrong(messages, expected):
    found = check_records([convo(messages, line=12)])
    bad = only(found, "bad_conversation")
    assert [(f.index, f.location) for f in bad] == [(0, "f.jsonl:12")]
    assert expected in bad[0].detail


def test_valid_conversation_shapes_pass():
    call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    with_tools = [
        SYSTEM,
        USER,
        {"role": "assistant", "content": "", "tool_calls": [call, call]},
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
        {"role": "tool", "tool_call_id": "c1", "content": "1"},
        ASSISTANT,
        USER,
        ASSISTANT,
    ]
    records = [
        convo(with_tools, 1),
        convo([{"role": "assistant", "content": "Once upon a time there was a fox."}], 2, "text"),
        make_record(
            [USER],
            "preference",
            "f.jsonl",
            3,
            chosen="Fine, thanks, and how are you?",
            rejected="Why do you ask me that?",
        ),
    ]
    assert check_records(records) == []


def test_invalid_tool_call_arguments_quote_the_json_error_position():
    bad = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"c": 1'}}
    nameless = {"id": "c2", "type": "function", "function": {"arguments": "{}"}}
    messages = [
        USER,
        {"role": "assistant", "content": "", "tool_calls": [bad, nameless]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ASSISTANT,
    ]
    found = only(check_records([convo(messages, 8)]), "invalid_tool_call")
    assert [f.location for f in found] == ["f.jsonl:8"]
    assert "message 2, tool call 1 (weather): arguments are not valid JSON" in found[0].detail
    assert "(char 7)" in found[0].detail
    assert "message 2, tool call 2: missing function name" in found[0].detail


def test_findings_are_ordered_by_record():
    records = [qa("Is it?", "Yes.", 3), qa("Hello?", "", 1), qa("Is it?", "Yes.", 2)]
    found = check_records(records)
    assert [(f.index, f.check) for f in found] == [
        (0, "too_short"),
        (1, "empty_output"),
        (2, "exact_duplicate"),
        (2, "too_short"),
    ]


def test_leaks_of_each_kind_name_eval_and_train_rows():
    long_run = text(13, 50)
    train = [
        *distinct(4),
        qa("Describe it.", text(40, 60), 40),
        qa("Tell a story.", f"{text(10, 70)} {long_run} {text(10, 71)}", 41),
    ]
    evaluation = [
        make_record(train[1]["messages"], "instruction", "eval.jsonl", 1),
        qa("Describe it.", text(40, 60) + " indeed", 2),
        qa("Another story?", f"{text(15, 80)} {long_run} {text(5, 81)}", 3),
        qa("Unrelated question here?", text(30, 90), 4),
        qa("Almost a story?", f"{text(15, 82)} {' '.join(long_run.split()[:12])}", 5),
    ]
    for record in evaluation:
        record["source"]["file"] = "eval.jsonl"
    found = find_leaks(train, evaluation)
    assert [(f.check, f.location, f.other) for f in found] == [
        ("leak", "eval.jsonl:1", "f.jsonl:2"),
        ("leak", "eval.jsonl:2", "f.jsonl:40"),
        ("leak", "eval.jsonl:3", "f.jsonl:41"),
    ]
    assert found[0].detail == "exact duplicate of a train example"
    assert found[1].detail.startswith("near-duplicate of a train example, similarity 0.9")
    first_words = " ".join(long_run.split()[:8])
    assert found[2].detail == f'answer shares a 13-gram with a train answer: "{first_words} ..."'


def test_no_leaks_between_unrelated_sets():
    assert find_leaks(distinct(10), distinct(10, 100)) == []


def test_label_distribution():
    records = [
        qa("Review?", "positive", n, task="classification", label=label)
        for n, label in enumerate(["pos"] * 6 + ["neg"] * 3 + ["neu"])
    ]
    assert label_distribution(records) == {
        "counts": {"pos": 6, "neg": 3, "neu": 1},
        "imbalance_ratio": 6.0,
        "majority_share": 0.6,
    }
    assert label_distribution(distinct(3))["counts"] == {}


@pytest.mark.parametrize(
    ("task", "count", "expected"),
    [
        ("chat", 120, "chat: 120 examples, below the minimum of 500 (2000+ recommended)"),
        ("chat", 700, "chat: 700 examples, below the recommended 2000"),
        ("chat", 2000, None),
        ("classification", 99, "classification: 99 examples, below the minimum of 100 (1000+ "),
        ("code", 200, "code: 200 examples, below the recommended 1000"),
        ("summarization", 1, "summarization: 1 example, below the minimum of 100 (500+ "),
        ("instruction", 500, None),
        ("preference", 3, None),
    ],
)
def test_minimum_count_warnings(task, count, expected):
    warnings = minimum_count_warnings(task, count)
    if expected is None:
        assert warnings == []
    else:
        assert len(warnings) == 1
        assert warnings[0].startswith(expected)


def test_the_quick_path_for_plain_records_finds_what_the_full_checks_find():
    from tunewright.data import checks

    def plain(n: int, *turns: tuple[str, str], task: str = "chat") -> dict:
        messages = [{"role": role, "content": content} for role, content in turns]
        return make_record(messages, task, "f.jsonl", n)

    answer = text(12, 1)
    records = [
        plain(1, ("user", "hi there"), ("assistant", answer)),
        plain(2, ("system", "be kind"), ("user", "q"), ("assistant", "two words")),
        plain(3, ("user", "q"), ("assistant", "Dear {{name}}, thanks for your patience today.")),
        plain(4, ("user", "q"), ("assistant", "   ")),  # empty answer
        plain(5, ("assistant", answer), ("user", "q")),  # out of order
        plain(6, ("user", "  "), ("assistant", answer)),  # empty user turn
        plain(7, ("user", "q"), ("assistant", "bad \x07 bell in the answer text here")),
        plain(8, ("user", "q"), ("assistant", "cafÃ© is mojibake of a word here")),
        plain(9, ("user", "q"), ("assistant", "ok"), task="classification"),
        plain(10, ("user", "q"), ("assistant", "x = '{name}'  # TODO"), task="code"),
        plain(11, ("user", "q"), ("assistant", "tab\tand\nnewline are fine words here ok")),
        plain(12, ("user", "q"), ("assistant", answer), ("user", "more"), ("assistant", answer)),
    ]
    records[0]["messages"][1]["weight"] = 1
    quick = [
        f
        for i, r in enumerate(records)
        for f in (checks._plain_findings(i, r, 5, {}) or checks._record_findings(i, r, 5))
    ]
    full = [f for i, r in enumerate(records) for f in checks._record_findings(i, r, 5)]
    assert quick == full
    assert {f.check for f in full} >= {
        "too_short",
        "placeholder",
        "empty_output",
        "bad_conversation",
        "encoding",
    }
    # The quick path answered the clean and warning-only records itself.
    answered = [i for i, r in enumerate(records) if checks._plain_findings(i, r, 5, {}) is not None]
    assert answered == [0, 1, 2, 8, 9, 10, 11]
