"""OpenAI file checks: each error class at its line, token counts, default epochs, billing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("tiktoken")

from tunewright.openai_ft import tokens
from tunewright.openai_ft.check import check_file


def chat(question: str, answer: str, **extra: object) -> dict:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        **extra,
    }


def good_rows(count: int) -> list[dict]:
    """Distinct, clean examples (no duplicates, answers of 5+ words)."""
    return [
        chat(f"What is {i} plus {i + 1}, in words please?", f"The sum of them is {2 * i + 1}.")
        for i in range(count)
    ]


def write(path: Path, lines: list[object]) -> Path:
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


# Each of OpenAI's data-preparation error classes, at a known line.
BAD_LINES = {
    2: ("invalid_json", '{"messages": [}'),
    3: ("not_an_object", [1, 2]),
    4: ("missing_messages", {"conversation": []}),
    5: ("messages_not_list", {"messages": "hello"}),
    6: (
        "unknown_role",
        {"messages": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "a"}]},
    ),
    7: ("missing_content", {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}),
    8: (
        "unknown_key",
        {
            "messages": [
                {"role": "user", "content": "hi", "mood": "happy"},
                {"role": "assistant", "content": "Hello, how can I help?"},
            ]
        },
    ),
    9: ("no_assistant_message", {"messages": [{"role": "user", "content": "anyone there?"}]}),
    10: (
        "bad_weight",
        {
            "messages": [
                {"role": "user", "content": "weigh this"},
                {"role": "assistant", "content": "It weighs three kilograms.", "weight": 2},
            ]
        },
    ),
    11: (
        "weight_not_on_assistant",
        {
            "messages": [
                {"role": "user", "content": "weigh me", "weight": 1},
                {"role": "assistant", "content": "You weigh nothing at all.", "weight": 1},
            ]
        },
    ),
}


def test_each_format_error_is_reported_at_its_line(tmp_path):
    lines = [good_rows(1)[0], *(row for _, row in BAD_LINES.values()), *good_rows(12)[1:]]
    report = check_file(write(tmp_path / "bad.jsonl", lines))
    found = {(p.check, p.line) for p in report.errors}
    for line, (check, _) in BAD_LINES.items():
        assert (check, line) in found, (check, line, sorted(found, key=str))
    assert not report.ok
    assert report.examples == len(lines)
    # Rows with format errors do not reach the data stage's checks: no double reports.
    assert {p.line for p in report.problems} == set(BAD_LINES)
    by_check = {row["check"]: row for row in report.by_check()}
    assert by_check["unknown_role"]["lines"] == [6]
    assert "robot" in by_check["unknown_role"]["detail"]


def test_fewer_than_ten_examples_is_an_error_for_the_file(tmp_path):
    report = check_file(write(tmp_path / "few.jsonl", good_rows(9)))
    assert [(p.check, p.line) for p in report.errors] == [("too_few_examples", None)]
    assert "9 examples" in report.errors[0].detail
    assert check_file(write(tmp_path / "ten.jsonl", good_rows(10))).ok


def test_validation_files_have_no_minimum(tmp_path):
    assert check_file(write(tmp_path / "val.jsonl", good_rows(2)), min_examples=0).ok


def test_blank_lines_and_legacy_function_calling(tmp_path):
    legacy = {
        "messages": [
            {"role": "user", "content": "weather in Oslo?"},
            {"role": "assistant", "content": None, "function_call": {"name": "w"}},
            {"role": "function", "name": "w", "content": "rain"},
            {"role": "assistant", "content": "It is raining in Oslo today."},
        ],
        "functions": [{"name": "w"}],
    }
    report = check_file(write(tmp_path / "f.jsonl", [*good_rows(10), "", legacy]))
    found = {(p.check, p.line) for p in report.errors}
    assert ("invalid_json", 11) in found  # the blank line
    assert ("legacy_function_calling", 12) in found
    details = [p.detail for p in report.errors if p.check == "legacy_function_calling"]
    assert any("use 'tools'" in d for d in details) and any("use 'tool'" in d for d in details)


def test_tool_calls_without_content_are_valid(tmp_path):
    call = {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}
    row = {
        "messages": [
            {"role": "user", "content": "add one please"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "2"},
            {"role": "assistant", "content": "The answer is two, as computed."},
        ],
        "tools": [{"type": "function", "function": {"name": "add", "parameters": {}}}],
        "parallel_tool_calls": False,
    }
    assert check_file(write(tmp_path / "t.jsonl", [*good_rows(10), row])).ok


def test_the_data_stage_checks_run_too(tmp_path):
    rows = good_rows(10)
    bad_call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    lines = [
        *rows,
        rows[3],  # line 11: exact duplicate of line 4
        chat("Say nothing at all, please.", "   "),  # line 12: empty answer
        {
            "messages": [
                {"role": "user", "content": "call it"},
                {"role": "assistant", "content": "", "tool_calls": [bad_call]},
                {"role": "tool", "tool_call_id": "c", "content": "done"},
                {"role": "assistant", "content": "It has been called for you."},
            ]
        },  # line 13: arguments are not JSON
        chat("Is this text fine?", "Caf\u00c3\u00a9 au lait is served here daily."),  # line 14
    ]
    report = check_file(write(tmp_path / "d.jsonl", lines))
    found = {(p.check, p.line) for p in report.errors}
    assert ("exact_duplicate", 11) in found
    assert ("empty_output", 12) in found
    assert ("invalid_tool_call", 13) in found
    assert ("encoding", 14) in found
    duplicate = next(p for p in report.errors if p.check == "exact_duplicate")
    assert "first at line 4" in duplicate.detail


def test_dpo_files_are_checked_in_their_own_shape(tmp_path):
    def pair(i: int) -> dict:
        return {
            "input": {"messages": [{"role": "user", "content": f"Write a haiku number {i}."}]},
            "preferred_output": [
                {"role": "assistant", "content": f"Quiet pond {i}, frog jumps in."}
            ],
            "non_preferred_output": [{"role": "assistant", "content": f"No haiku {i} today."}],
        }

    bad = {"input": {"messages": [{"role": "user", "content": "hi"}]}, "preferred_output": []}
    report = check_file(write(tmp_path / "dpo.jsonl", [*(pair(i) for i in range(10)), bad]))
    assert report.kind == "dpo"
    assert {(p.check, p.line) for p in report.errors} == {("bad_preference_output", 11)}
    assert len(report.token_counts) == 10


# ---------------------------------------------------------------------------------------------
# Tokens


def test_token_counts_follow_openais_recipe():
    counter = tokens.counter_for("gpt-3.5-turbo-0125")  # cl100k_base: exact offline
    assert counter.exact
    hello = [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "hi"}]
    # 3 + user(1) + "hello world"(2), 3 + assistant(1) + "hi"(1), 3 to prime the reply
    assert tokens.count_messages(counter, hello) == 14
    named = [{"role": "user", "name": "bob", "content": "hi"}]
    # 3 + user(1) + hi(1) + bob(1) + 1 for the name, + 3
    assert tokens.count_messages(counter, named) == 10
    # Special-token text in data is counted as text, not rejected.
    assert counter.count("<|endoftext|>") > 1


def test_counts_for_gpt4o_are_estimates_when_o200k_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(tokens, "_is_cached", lambda name: False)
    report = check_file(write(tmp_path / "a.jsonl", good_rows(10)), "gpt-4o-mini-2024-07-18")
    assert not report.exact_counts and report.encoding == "cl100k_base"
    assert any("estimates with cl100k_base" in note for note in report.notes)
    exact = check_file(write(tmp_path / "b.jsonl", good_rows(10)), "gpt-3.5-turbo-0125")
    assert exact.exact_counts and not exact.notes


def test_examples_over_the_limit_are_warnings(tmp_path):
    long = chat("Repeat after me.", "word " * 17_000)  # ~17k tokens > 16,385
    report = check_file(write(tmp_path / "l.jsonl", [*good_rows(10), long]), "gpt-3.5-turbo-0125")
    over = [p for p in report.warnings if p.check == "over_token_limit"]
    assert [p.line for p in over] == [11] and report.ok
    assert report.token_stats()["over_limit"] == 1
    capped = sum(report.token_counts[:10]) + 16_385
    assert report.billed_tokens == capped * report.epochs


def test_unknown_models_have_no_limit(tmp_path):
    report = check_file(write(tmp_path / "u.jsonl", good_rows(10)), "my-compatible-model")
    assert report.limit is None
    assert any("not in tunewright's table" in note for note in report.notes)


def test_model_table_resolves_snapshots_and_fine_tuned_ids():
    assert tokens.model_info("gpt-4.1-nano-2025-04-14").limit == 65_536
    assert tokens.model_info("gpt-3.5-turbo-0125").limit == 16_385
    assert tokens.model_info("ft:gpt-4o-mini-2024-07-18:acme::abc123").limit == 65_536
    assert not tokens.model_info("gpt-5-preview").known


# ---------------------------------------------------------------------------------------------
# Epochs and billing


@pytest.mark.parametrize(
    ("examples", "epochs"),
    [(1, 25), (4, 25), (10, 10), (30, 4), (34, 3), (50, 3), (8333, 3), (9000, 2), (20_000, 1)],
)
def test_default_epochs(examples, epochs):
    assert tokens.default_epochs(examples) == epochs


def test_explicit_epochs_must_be_between_1_and_25():
    assert tokens.resolve_epochs(10, 2) == 2
    assert tokens.resolve_epochs(10, None) == 10
    for bad in (0, 26):
        with pytest.raises(ValueError, match="1-25"):
            tokens.resolve_epochs(10, bad)


def test_billing_caps_each_example_at_the_limit():
    assert tokens.billed_tokens([10, 100, 70_000], 65_536, 2) == (10 + 100 + 65_536) * 2
    assert tokens.billed_tokens([10, 100], None, 3) == 330


def test_billing_in_the_report(tmp_path):
    path = write(tmp_path / "b.jsonl", good_rows(10))
    report = check_file(path, "gpt-3.5-turbo-0125")
    assert report.epochs == 10 and report.epochs_source == "auto"
    assert report.billed_tokens == sum(report.token_counts) * 10
    explicit = check_file(path, "gpt-3.5-turbo-0125", epochs=2)
    assert explicit.billed_tokens == sum(report.token_counts) * 2
    assert explicit.epochs_source == "explicit"
